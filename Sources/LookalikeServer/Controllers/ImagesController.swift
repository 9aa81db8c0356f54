// The library's images, by id only: pages of the library (filter by label, or text matching a label
// or a top-5 tag), one image's details (paths, tags, metadata, duplicates), its thumbnail (cached
// JPEG) and its file (the original streamed with its real type, or a JPEG rendition when browsers
// cannot show the format). A client never names a path, so there is nothing to traverse.
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct ImagesController {
    let services: ServerServices
    let fileIO = FileIO()

    func addRoutes(to group: RouterGroup<LookalikeRequestContext>) {
        group.get(use: list)
        group.get("{id}", use: details)
        group.get("{id}/thumbnail", use: thumbnail)
        group.get("{id}/file", use: file)
    }

    @Sendable func list(_ request: Request, context: LookalikeRequestContext) async throws -> ImagePageResponse {
        let query = QueryParameters(request)
        let listRequest = ImageListRequest(label: query["label"], text: query["q"],
                                           page: try query.int("page", default: 1, in: 1...1_000_000),
                                           perPage: try query.int("per_page", default: 60, in: 1...500))
        let page = try await services.served.images(listRequest)
        return ImagePageResponse(page: page.page, perPage: page.perPage, total: page.total, pages: page.pages,
                                 label: listRequest.label, q: listRequest.text,
                                 items: page.items.map { ImageItem($0, services: services) })
    }

    @Sendable func details(_ request: Request, context: LookalikeRequestContext) async throws -> ImageDetailResponse {
        let id = try request.imageId(context)
        guard let details = try await services.served.details(id), let first = details.files.first else {
            throw APIError(.notFound, "id: no image with id \(id)")
        }
        let image = details.image
        var duplicates = details.files.dropFirst().map {
            DuplicateRef(id: id, path: services.display($0.path), kind: "exact", score: 1, thumbnail: nil)
        }
        // Near duplicates: the image's neighbours within the dedupe threshold (cosine distance).
        var near = SearchRequest(k: 10, metric: .cosine)
        near.minScore = 1 - Deduplicator.defaultThreshold
        if let answer = try? await services.served.search(.id(id), near, crop: nil) {
            duplicates += answer.results.map {
                DuplicateRef(id: $0.id, path: services.display($0.path), kind: "near", score: $0.score,
                             thumbnail: "/api/images/\($0.id)/thumbnail")
            }
        }
        let hasGPS = image.gpsLatitude != nil && image.gpsLongitude != nil
        let show = services.configuration.showPrivate
        let metadata = Metadata(capturedAt: image.capturedAt, cameraMake: image.cameraMake, cameraModel: image.cameraModel,
                                gpsLatitude: show ? image.gpsLatitude : nil, gpsLongitude: show ? image.gpsLongitude : nil,
                                gpsHidden: hasGPS && !show)
        return ImageDetailResponse(
            id: id, path: services.display(first.path), paths: details.files.map { services.display($0.path) },
            label: first.label, tags: Tag.parse(image.tags), width: image.width, height: image.height,
            bytes: image.byteSize, contentType: ImageDecoder.format(path: first.path)?.mimeType,
            contentHash: image.contentHash, metadata: metadata, duplicates: duplicates,
            thumbnail: "/api/images/\(id)/thumbnail", file: "/api/images/\(id)/file", search: "/api/search?id=\(id)")
    }

    @Sendable func thumbnail(_ request: Request, context: LookalikeRequestContext) async throws -> Response {
        let id = try request.imageId(context)
        let size = try QueryParameters(request).int("size", default: MediaStore.defaultThumbnailSize, in: 1...4096)
        guard MediaStore.thumbnailSizes.contains(size) else {
            throw APIError(.badRequest, "size: must be one of \(MediaStore.thumbnailSizes.map(String.init).joined(separator: ", "))")
        }
        return try await respond(try await services.media.thumbnail(imageId: id, size: size), request: request, context: context)
    }

    @Sendable func file(_ request: Request, context: LookalikeRequestContext) async throws -> Response {
        let id = try request.imageId(context)
        return try await respond(try await services.media.file(imageId: id), request: request, context: context)
    }

    /// Media with its ETag and cache headers; 304 when the client already has it.
    func respond(_ media: MediaStore.Media, request: Request, context: LookalikeRequestContext) async throws -> Response {
        var headers: HTTPFields = [
            .contentType: media.contentType,
            .eTag: media.etag,
            // Content-addressed: safe to keep for a day; private when the library needs a token.
            .cacheControl: services.configuration.token == nil ? "public, max-age=86400" : "private, max-age=86400",
            .init("X-Content-Type-Options")!: "nosniff",
        ]
        if let tags = request.headers[.ifNoneMatch], tags.split(separator: ",").contains(where: {
            $0.trimmingCharacters(in: .whitespaces) == media.etag
        }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(media.byteCount)
        if let bytes = media.bytes {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        guard let path = media.filePath else { throw APIError(.notFound, "image file missing") }
        let body = try await fileIO.loadFile(path: path, context: context)
        return Response(status: .ok, headers: headers, body: body)
    }
}
