// The shared objects every controller uses, made once per server: the catalogue, the live library
// that follows it, search (with the batcher that shares scans between concurrent queries), media
// (thumbnails, originals), the upload limiter, the library's folders (cached for a few seconds:
// they only change when another folder is indexed) and the duplicates answer (cached per
// threshold and library state: it is an all-pairs computation).
import Foundation
import Logging
import LookalikeEngine
import LookalikeLibrary

public final class ServerServices: Sendable {
    public let configuration: ServerConfiguration
    public let catalogue: Catalogue
    public let library: LiveLibrary
    public let search: SearchService
    public let batcher: SearchBatcher
    public let media: MediaStore
    public let logger: Logger
    /// Bounds the uploads being read and embedded at once (memory stays bounded under a flood).
    let uploads: AsyncLimiter
    /// Duplicates are computed one at a time, off the request threads.
    let duplicatesLimiter = AsyncLimiter(permits: 1)
    private let foldersCache = Locked<(folders: LibraryFolders, at: Date)?>(nil)
    let duplicatesCache = Locked<[String: DuplicatesResponse]>([:])

    /// `makeEmbedder` is called on the first query that needs the network (uploads, URLs, boxes).
    public init(catalogue: Catalogue, configuration: ServerConfiguration, logger: Logger,
                makeEmbedder: @escaping @Sendable () throws -> Embedder) throws {
        self.configuration = configuration
        self.catalogue = catalogue
        self.logger = logger
        library = try LiveLibrary(catalogue: catalogue)
        let policy = FetchPolicy(maxBytes: configuration.maxUploadBytes, timeoutSeconds: 20,
                                 allowPrivateAddresses: configuration.allowPrivateURLs)
        let resolver = QueryResolver(library: library, fetchPolicy: policy, makeEmbedder: makeEmbedder)
        batcher = SearchBatcher(library: library, window: configuration.batchWindow,
                                concurrency: ProcessInfo.processInfo.activeProcessorCount)
        search = SearchService(library: library, resolver: resolver, batcher: batcher)
        media = MediaStore(catalogue: catalogue)
        uploads = AsyncLimiter(permits: configuration.concurrentUploads)
    }

    /// The library's folders, for relative paths and folder restrictions.
    func folders() -> LibraryFolders {
        if let cached = foldersCache.value, Date().timeIntervalSince(cached.at) < 5 { return cached.folders }
        let folders = (try? LibraryFolders(catalogue: catalogue)) ?? LibraryFolders(roots: [])
        foldersCache.withLock { $0 = (folders, Date()) }
        return folders
    }

    /// How a path is shown: relative to the library's folders unless --show-private.
    func display(_ path: String) -> String {
        configuration.showPrivate ? path : folders().display(path)
    }
}
