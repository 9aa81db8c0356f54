// Libraries/ holds what a server can serve: the local library (a catalogue and its live vectors,
// searched in this process through the batcher) or a remote vector store (a Milvus collection
// filled by `index --store`, searched in Milvus; this process holds no vectors). Both answer the
// controllers' questions in the same shapes, so the web app and the API are the same over either;
// what only a local library can answer (duplicate groups, the evaluation report) is asked of
// `ServerServices.local` and refused over a store with the reason.
import Foundation
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

/// What a served library says about itself for /api/stats.
struct LibraryFacts: Sendable {
    var images: Int
    var files: Int
    var searchable: Int
    var labels: [LabelCount]
    var model: String?
    var modelChecksum: String?
    var dimension: Int
    var methods: [String]
    var metrics: [Metric]
    var bytes: Int64
    var batcher: SearchBatcher.Statistics?
    /// The store answering, when not the local library.
    var store: String?
}

protocol ServedLibrary: Sendable {
    /// The catalogue's path or the store's address, for logs and the start line.
    var name: String { get }
    /// Embeds uploads and URLs (the network is loaded on first use, or ahead by the server).
    var resolver: QueryResolver { get }
    /// The search methods a request may name.
    var methods: [String] { get }
    func search(_ source: QuerySource, _ request: SearchRequest, crop: CropBox?) async throws -> SearchAnswer
    func summary(_ id: Int64) async throws -> ImageSummary?
    func randomId() async throws -> Int64?
    func images(_ request: ImageListRequest) async throws -> ImageListPage
    func details(_ id: Int64) async throws -> ImageDetails?
    /// The image's files (first readable one is shown) and content hash, for thumbnails and files.
    func media(_ id: Int64) async throws -> (paths: [String], hash: String)?
    func facts() async throws -> LibraryFacts
    /// The folders paths are shown relative to.
    func folders() -> LibraryFolders
}

/// The local library: the catalogue, the vectors that follow it, search with the batcher.
final class LocalLibrary: ServedLibrary {
    let catalogue: Catalogue
    let library: LiveLibrary
    let search: SearchService
    let batcher: SearchBatcher
    private let foldersCache = Locked<(folders: LibraryFolders, at: Date)?>(nil)

    init(catalogue: Catalogue, fetchPolicy: FetchPolicy, batchWindow: Double, answerLists: Bool = true,
         makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) throws {
        self.catalogue = catalogue
        library = try LiveLibrary(catalogue: catalogue)
        let resolver = QueryResolver(library: library, fetchPolicy: fetchPolicy, makeEmbedder: makeEmbedder)
        // Scans on half the cores: queries arriving during a scan go together in the next one
        // (bigger batches read the vectors fewer times), and the other cores serve HTTP. Measured
        // on 2 cores under `wrk -c64` (rerank=none): one scan at a time 1,264 req/s, p99 90 ms;
        // two 1,134 req/s, p99 100 ms (batches of 10 against 5).
        batcher = SearchBatcher(library: library, window: batchWindow,
                                concurrency: max(1, ProcessInfo.processInfo.activeProcessorCount / 2))
        search = SearchService(library: library, resolver: resolver, batcher: batcher, answerLists: answerLists)
    }

    var name: String { catalogue.path }
    var resolver: QueryResolver { search.resolver }
    var methods: [String] { IndexFactory.names }

    func search(_ source: QuerySource, _ request: SearchRequest, crop: CropBox?) async throws -> SearchAnswer {
        try await search.search(source, request, crop: crop)
    }

    func summary(_ id: Int64) async throws -> ImageSummary? { try search.summaries.summaries(imageIds: [id])[id] }
    func randomId() async throws -> Int64? { library.store.randomId() }
    func images(_ request: ImageListRequest) async throws -> ImageListPage { try catalogue.images(request) }
    func details(_ id: Int64) async throws -> ImageDetails? { try catalogue.details(imageId: id) }

    func media(_ id: Int64) async throws -> (paths: [String], hash: String)? {
        guard let details = try catalogue.details(imageId: id) else { return nil }
        return (details.files.map(\.path), details.image.contentHash)
    }

    func facts() async throws -> LibraryFacts {
        let info = try catalogue.info()
        let indexBytes = Self.folderBytes(LibrarySnapshot.folder(for: catalogue))
        return LibraryFacts(images: info.images, files: info.files, searchable: library.count, labels: try catalogue.labelCounts(),
                            model: info.model, modelChecksum: info.modelChecksum, dimension: library.model.dimension,
                            methods: methods, metrics: Metric.allCases, bytes: info.databaseBytes + indexBytes,
                            batcher: batcher.statistics, store: nil)
    }

    /// Cached for a few seconds: folders only change when another folder is indexed.
    func folders() -> LibraryFolders {
        if let cached = foldersCache.value, Date().timeIntervalSince(cached.at) < 5 { return cached.folders }
        let folders = (try? LibraryFolders(catalogue: catalogue)) ?? LibraryFolders(roots: [])
        foldersCache.withLock { $0 = (folders, Date()) }
        return folders
    }

    static func folderBytes(_ url: URL) -> Int64 {
        guard let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total: Int64 = 0
        for case let file as URL in walker { total += Int64((try? file.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
        return total
    }
}

/// A Milvus collection (see `StoreLibrary`): paths are the workers' own, shown by their last two
/// components beyond loopback (no library folders are known here).
final class RemoteLibrary: ServedLibrary {
    let store: StoreLibrary

    init(store: StoreLibrary) { self.store = store }

    var name: String { store.address.description }
    var resolver: QueryResolver { store.resolver }
    /// Milvus's own index (AUTOINDEX) ranks; no other method exists there.
    var methods: [String] { ["milvus"] }

    func search(_ source: QuerySource, _ request: SearchRequest, crop: CropBox?) async throws -> SearchAnswer {
        try await store.search(source, request, crop: crop)
    }

    func summary(_ id: Int64) async throws -> ImageSummary? { try await store.image(id: id)?.summary }
    func randomId() async throws -> Int64? { try await store.randomImage()?.id }
    func images(_ request: ImageListRequest) async throws -> ImageListPage { try await store.page(request) }
    func details(_ id: Int64) async throws -> ImageDetails? { try await store.details(id: id) }

    func media(_ id: Int64) async throws -> (paths: [String], hash: String)? {
        try await store.image(id: id).map { ([$0.path], $0.hash) }
    }

    func facts() async throws -> LibraryFacts {
        let count = try await store.store.count()
        let model = store.modelFacts
        return LibraryFacts(images: count, files: count, searchable: count, labels: try await store.labelCounts(),
                            model: model["model"], modelChecksum: model["checksum"],
                            dimension: store.collection.dimension ?? 0, methods: methods, metrics: [.cosine],
                            bytes: 0, batcher: nil, store: name)
    }

    func folders() -> LibraryFolders { LibraryFolders(roots: []) }
}
