// The library as a whole: statistics (counts, labels, folders, model, the index methods and metrics
// a search may name, sizes on disk, limits) and the duplicate groups (exact and near, read-only;
// an all-pairs computation, so it runs off the request threads, one at a time, cached per threshold
// until the library changes).
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct LibraryController {
    let services: ServerServices

    func addRoutes(to group: RouterGroup<LookalikeRequestContext>) {
        group.get("stats", use: stats)
        group.get("duplicates", use: duplicates)
    }

    @Sendable func stats(_ request: Request, context: LookalikeRequestContext) async throws -> StatsResponse {
        let facts = try await services.served.facts()
        let configuration = services.configuration
        return StatsResponse(
            images: facts.images, files: facts.files, searchable: facts.searchable,
            labels: facts.labels, folders: services.served.folders().names,
            model: facts.model, modelChecksum: facts.modelChecksum, dimension: facts.dimension,
            methods: facts.methods, metrics: facts.metrics.map { MetricInfo(name: $0.rawValue, explanation: $0.explanation) },
            libraryBytes: facts.bytes, thumbnailBytes: services.media.cacheBytes(),
            defaultK: configuration.defaultK, maxK: configuration.maxK,
            maxUploadBytes: configuration.maxUploadBytes, thumbnailSizes: MediaStore.thumbnailSizes,
            duplicateThreshold: Deduplicator.defaultThreshold,
            authRequired: configuration.token != nil, showPrivate: configuration.showPrivate,
            batcher: facts.batcher, store: facts.store)
    }

    @Sendable func duplicates(_ request: Request, context: LookalikeRequestContext) async throws -> DuplicatesResponse {
        let threshold = try QueryParameters(request).float("threshold", in: 0.001...0.5) ?? Deduplicator.defaultThreshold
        let local = try services.localLibrary(for: "duplicate groups")
        let key = "\(threshold)@\(local.library.counter)"
        if let cached = services.duplicatesCache.value[key] { return cached }
        let catalogue = local.catalogue
        let started = Date()
        let groups = try await services.duplicatesLimiter.offload {
            try Deduplicator.groups(catalogue: catalogue, threshold: threshold)
        }
        var ids: [String: Int64] = [:]
        for path in groups.flatMap(\.paths) where ids[path] == nil {
            ids[path] = try catalogue.imageId(path: path)
        }
        let summaries = try catalogue.summaries(imageIds: Array(Set(ids.values)))
        let items = groups.map { group in
            DuplicateGroupItem(kind: group.kind, maxDistance: group.maxDistance, images: group.paths.map { path in
                let id = ids[path]
                return DuplicateMember(id: id, path: services.display(path), label: id.flatMap { summaries[$0]?.label },
                                       thumbnail: id.map { "/api/images/\($0)/thumbnail" })
            })
        }
        let answer = DuplicatesResponse(threshold: threshold, groups: items, ms: Date().timeIntervalSince(started) * 1000)
        services.duplicatesCache.withLock { cache in
            if cache.count > 16 { cache.removeAll() }
            cache[key] = answer
        }
        return answer
    }
}
