// The shared objects every controller uses, made once per server: the served library (the local
// catalogue with its live vectors and batcher, or a remote store; Libraries/), media (thumbnails,
// originals), the upload limiter and the duplicates answer (cached per threshold and library
// state: it is an all-pairs computation, local libraries only).
import Foundation
import Logging
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public final class ServerServices: Sendable {
    public let configuration: ServerConfiguration
    /// What is searched and browsed.
    let served: any ServedLibrary
    /// The local library when serving one (nil over a store).
    let local: LocalLibrary?
    public let media: MediaStore
    public let logger: Logger
    /// Bounds the uploads being read and embedded at once (memory stays bounded under a flood).
    let uploads: AsyncLimiter
    /// Duplicates are computed one at a time, off the request threads.
    let duplicatesLimiter = AsyncLimiter(permits: 1)
    let duplicatesCache = Locked<[String: DuplicatesResponse]>([:])

    /// Serves a local library. `makeEmbedder` is called on the first query that needs the network
    /// (uploads, URLs, boxes).
    public init(catalogue: Catalogue, configuration: ServerConfiguration, logger: Logger,
                makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) throws {
        self.configuration = configuration
        self.logger = logger
        let local = try LocalLibrary(catalogue: catalogue, fetchPolicy: Self.fetchPolicy(configuration),
                                     batchWindow: configuration.batchWindow, answerLists: configuration.answerLists,
                                     makeEmbedder: makeEmbedder)
        self.local = local
        served = local
        media = MediaStore(catalogue: catalogue)
        uploads = AsyncLimiter(permits: configuration.concurrentUploads)
    }

    /// Serves a Milvus collection (`index --store` fills it); thumbnails are made from the rows'
    /// paths (shared storage) and cached in `thumbnailCache`.
    public init(store address: MilvusAddress, thumbnailCache: URL, configuration: ServerConfiguration, logger: Logger,
                makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) async throws {
        self.configuration = configuration
        self.logger = logger
        let store = try await StoreLibrary.open(address, fetchPolicy: Self.fetchPolicy(configuration), makeEmbedder: makeEmbedder)
        local = nil
        served = RemoteLibrary(store: store)
        media = MediaStore(cacheFolder: thumbnailCache) { id in try await store.image(id: id).map { ([$0.path], $0.hash) } }
        uploads = AsyncLimiter(permits: configuration.concurrentUploads)
    }

    static func fetchPolicy(_ configuration: ServerConfiguration) -> FetchPolicy {
        FetchPolicy(maxBytes: configuration.maxUploadBytes, timeoutSeconds: 20,
                    allowPrivateAddresses: configuration.allowPrivateURLs)
    }

    /// Loads the network now (and checks it against the library's or store's model).
    @discardableResult
    public func preloadEngine() throws -> Embedder { try served.resolver.engine() }

    /// The catalogue's path or the store's address.
    public var libraryName: String { served.name }

    /// Images searchable now (for the start line).
    public func searchableCount() async -> Int { (try? await served.facts().searchable) ?? 0 }

    /// The local library, or the reason a store cannot do `what`.
    func localLibrary(for what: String) throws -> LocalLibrary {
        guard let local else {
            throw APIError(.notImplemented, "\(what) needs the local library; this server answers from \(served.name)")
        }
        return local
    }

    /// How a path is shown: relative to the library's folders unless --show-private.
    func display(_ path: String) -> String {
        configuration.showPrivate ? path : served.folders().display(path)
    }

    /// A search result's shown path and parsed tags, remembered per image: every answer shows 20
    /// to 100 results, mostly images shown before, and redoing both for each was 5 % of a loaded
    /// server's CPU. An entry is used only while the image's stored path and tags and the
    /// library's folders are still the ones it was made from.
    func presentation(id: Int64, path: String, tags: String) -> (path: String, tags: [Tag]) {
        let folders = configuration.showPrivate ? nil : served.folders().roots
        if let hit = presentations.withLock({ cache -> (path: String, tags: [Tag])? in
            if cache.folders != folders { cache = PresentationCache(folders: folders) }
            guard let entry = cache.entries[id], entry.rawPath == path, entry.rawTags == tags else { return nil }
            return (entry.path, entry.tags)
        }) {
            return hit
        }
        let made = (path: display(path), tags: Tag.parse(tags))
        presentations.withLock { cache in
            guard cache.folders == folders else { return }
            if cache.entries.count >= 200_000 { cache.entries.removeAll(keepingCapacity: true) }
            cache.entries[id] = PresentationCache.Entry(rawPath: path, rawTags: tags, path: made.path, tags: made.tags)
        }
        return made
    }

    struct PresentationCache: Sendable {
        struct Entry: Sendable {
            let rawPath: String
            let rawTags: String
            let path: String
            let tags: [Tag]
        }
        var folders: [String]?
        var entries: [Int64: Entry] = [:]
    }
    let presentations = Locked(PresentationCache(folders: nil))
}
