// Search: by a library image (GET /api/search?id=), a random one (GET /api/random), or an image
// the client sends (POST /api/search: multipart or raw body, or ?url= for the server to fetch), each
// optionally restricted to a box of the query (box=x,y,w,h in fractions), a label or a folder, and
// cut at min_score. Uploads wait for a slot before their bodies are read (bounded memory under a
// flood) and are embedded by the engine's queue off the request threads; library queries go
// through the batcher, so concurrent ones share one matrix product.
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct SearchController {
    let services: ServerServices

    func addRoutes(to group: RouterGroup<LookalikeRequestContext>) {
        group.get("search", use: searchLibrary)
        group.get("random", use: random)
        group.post("search", use: searchUpload)
    }

    @Sendable func searchLibrary(_ request: Request, context: LookalikeRequestContext) async throws -> SearchResponse {
        let started = ContinuousClock.now
        let query = QueryParameters(request)
        guard let id = try query.id("id") else {
            throw APIError(.badRequest, "id: required (the library image to search with); to search with your own image, POST it to /api/search")
        }
        return try await libraryQuery(id, kind: "id", query: query, started: started)
    }

    @Sendable func random(_ request: Request, context: LookalikeRequestContext) async throws -> SearchResponse {
        let started = ContinuousClock.now
        guard let id = try await services.served.randomId() else {
            throw APIError(.notFound, "the library is empty: index a folder first")
        }
        return try await libraryQuery(id, kind: "random", query: QueryParameters(request), started: started)
    }

    func libraryQuery(_ id: Int64, kind: String, query: QueryParameters, started: ContinuousClock.Instant) async throws -> SearchResponse {
        let searchRequest = try query.searchRequest(services.configuration, methods: services.served.methods)
        let box = try query.box()
        let answer = try await services.served.search(.id(id), searchRequest, crop: box)
        let summary = try await services.served.summary(id)
        let querySummary = QuerySummary(
            kind: kind, id: id, summary: "id:\(id)", label: summary?.label, path: summary.map { services.display($0.path) },
            thumbnail: "/api/images/\(id)/thumbnail", width: summary.flatMap { $0.width > 0 ? $0.width : nil },
            height: summary.flatMap { $0.height > 0 ? $0.height : nil },
            tags: Tag.parse(summary?.tags ?? ""), box: box?.description)
        return respond(answer, query: querySummary, request: searchRequest, started: started)
    }

    @Sendable func searchUpload(_ request: Request, context: LookalikeRequestContext) async throws -> SearchResponse {
        let query = QueryParameters(request)
        let searchRequest = try query.searchRequest(services.configuration, methods: services.served.methods)
        let box = try query.box()
        if let url = query["url"] {
            guard ImageFetcher.isURL(url) else { throw APIError(.badRequest, "url: must be an http(s) URL") }
            let started = ContinuousClock.now
            let answer = try await services.uploads.withPermit {
                try await services.served.search(.url(url), searchRequest, crop: box)
            }
            return respond(answer, query: embeddedSummary(answer, kind: "url", summary: url, box: box),
                           request: searchRequest, started: started)
        }
        // Wait for a slot first: the body stays in the socket (back-pressure), not in memory.
        return try await services.uploads.withPermit {
            let upload = try await UploadReader.read(request, limit: services.configuration.maxUploadBytes,
                                                     fallbackName: query["name"] ?? "upload")
            let started = ContinuousClock.now
            let answer = try await services.served.search(.upload(bytes: upload.bytes, name: upload.name), searchRequest, crop: box)
            let summary = "\(upload.name) (\(upload.format.rawValue), \(upload.bytes.count) bytes)"
            return respond(answer, query: embeddedSummary(answer, kind: "upload", summary: summary, box: box),
                           request: searchRequest, started: started)
        }
    }

    func embeddedSummary(_ answer: SearchAnswer, kind: String, summary: String, box: CropBox?) -> QuerySummary {
        QuerySummary(kind: kind, id: nil, summary: summary, label: nil, path: nil, thumbnail: nil,
                     width: answer.queryWidth, height: answer.queryHeight, tags: Tag.parse(answer.queryTags),
                     box: box?.description)
    }

    func respond(_ answer: SearchAnswer, query: QuerySummary, request: SearchRequest, started: ContinuousClock.Instant) -> SearchResponse {
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let results = answer.results.map {
            let shown = services.presentation(id: $0.id, path: $0.path, tags: $0.tags)
            return ResultItem(rank: $0.rank, id: $0.id, path: shown.path, label: $0.label, tags: shown.tags,
                              score: $0.score, distance: $0.distance, cosine: $0.cosine, thumbnail: "/api/images/\($0.id)/thumbnail",
                              inliers: $0.inliers)
        }
        var note: String?
        if results.isEmpty {
            note = request.minScore.map { "no close match: no image scored at least \($0)" } ?? "no match: nothing to compare with"
        }
        return SearchResponse(query: query, k: request.k, metric: answer.metric, method: answer.method,
                              reranking: answer.reranking, precomputed: answer.precomputed, requested: answer.requested,
                              notes: answer.notes, minScore: request.minScore,
                              ms: ms, searchMs: answer.searchMilliseconds, embedMs: answer.embedMilliseconds,
                              count: results.count, results: results, note: note)
    }
}
