// Media/ (part of the server: only its controllers read images for people) serves a library's images to people, by image id only (a client never names a path): JPEG
// thumbnails made by libvips' shrink-on-load and cached on disk beside the catalogue
// (`<db>.thumbs/<2 hex>/<content hash>-<size>.jpg`, written atomically, so any number of server
// processes can share the cache), the original file with its real content type (sniffed from its
// bytes), and a JPEG rendition at display size for formats a browser cannot show (generic by content
// type: a format is either in `ImageFormat.browserTypes` or gets the rendition). ETags are the
// image's content hash, so a browser revalidates for free and a changed file gets a new tag.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch

public final class MediaStore: Sendable {
    public let cacheFolder: URL
    /// An image's files (the first readable one serves) and content hash; nil: no such image.
    public typealias Source = @Sendable (Int64) async throws -> (paths: [String], hash: String)?
    private let lookup: Source
    /// Longer sides a thumbnail may be asked for (a closed list keeps the cache bounded).
    public static let thumbnailSizes = [160, 320, 640]
    public static let defaultThumbnailSize = 320
    /// Longer side of the rendition for formats browsers cannot show.
    public static let renditionSize = 2048
    private let limiter: AsyncLimiter

    /// `concurrency`: thumbnails made at once (the rest queue).
    public convenience init(catalogue: Catalogue, concurrency: Int = 2) {
        self.init(cacheFolder: URL(fileURLWithPath: catalogue.path + ".thumbs"), concurrency: concurrency) { id in
            guard let details = try catalogue.details(imageId: id) else { return nil }
            return (details.files.map(\.path), details.image.contentHash)
        }
    }

    /// Images found by `source` (a remote store's rows), thumbnails cached in `cacheFolder`.
    public init(cacheFolder: URL, concurrency: Int = 2, source: @escaping Source) {
        self.cacheFolder = cacheFolder
        lookup = source
        limiter = AsyncLimiter(permits: concurrency)
    }

    /// Bytes to send with their type and entity tag.
    public struct Media: Sendable {
        public let contentType: String
        public let etag: String
        /// In memory (thumbnails, renditions) or a file to stream (originals).
        public let bytes: [UInt8]?
        public let filePath: String?
        public let byteCount: Int
    }

    /// The image's display file and content hash, or QueryError.notFound.
    func source(_ imageId: Int64) async throws -> (path: String, hash: String) {
        guard let found = try await lookup(imageId) else {
            throw QueryError(.notFound, "no image with id \(imageId)")
        }
        // The first path that still exists (a duplicate's other copy serves when one was deleted).
        guard let path = found.paths.first(where: { FileManager.default.isReadableFile(atPath: $0) }) else {
            throw QueryError(.notFound, "image \(imageId): its file is gone from disk (reindex with --prune)")
        }
        return (path, found.hash)
    }

    /// A JPEG thumbnail, longer side `size` (one of `thumbnailSizes`), from the cache or made now.
    public func thumbnail(imageId: Int64, size: Int = defaultThumbnailSize) async throws -> Media {
        guard Self.thumbnailSizes.contains(size) else {
            throw QueryError(.badRequest, "size: must be one of \(Self.thumbnailSizes.map(String.init).joined(separator: ", "))")
        }
        let (path, hash) = try await source(imageId)
        return try await cachedJPEG(path: path, hash: hash, size: size)
    }

    /// The original file to stream, or a JPEG rendition when browsers cannot show its format.
    public func file(imageId: Int64) async throws -> Media {
        let (path, hash) = try await source(imageId)
        guard let format = ImageDecoder.format(path: path) else {
            throw QueryError(.unsupportedType, "image \(imageId): its file is no longer an image we read")
        }
        if format.displaysInBrowsers {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
            return Media(contentType: format.mimeType, etag: "\"\(hash.prefix(32))\"", bytes: nil, filePath: path, byteCount: size)
        }
        return try await cachedJPEG(path: path, hash: hash, size: Self.renditionSize)
    }

    private func cachedJPEG(path: String, hash: String, size: Int) async throws -> Media {
        let etag = "\"\(hash.prefix(32))-\(size)\""
        let cached = cacheFolder.appendingPathComponent(String(hash.prefix(2)))
            .appendingPathComponent("\(hash)-\(size).jpg")
        if let data = FileManager.default.contents(atPath: cached.path), !data.isEmpty {
            return Media(contentType: "image/jpeg", etag: etag, bytes: [UInt8](data), filePath: nil, byteCount: data.count)
        }
        let rendition: ImageRenderer.Rendition
        do {
            rendition = try await limiter.offload { try ImageRenderer.jpeg(path: path, longSide: size) }
        } catch let error as DecodeError {
            throw QueryError(.unprocessable, "cannot render the image: \(error.reason)")
        }
        store(rendition.jpeg, at: cached)
        return Media(contentType: "image/jpeg", etag: etag, bytes: rendition.jpeg, filePath: nil, byteCount: rendition.jpeg.count)
    }

    /// Writes a cache file atomically (a unique temporary name, then rename); failures only cost a
    /// regeneration later (a read-only library still serves thumbnails).
    private func store(_ bytes: [UInt8], at url: URL) {
        let folder = url.deletingLastPathComponent()
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let temporary = folder.appendingPathComponent(".\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(bytes)) else { return }
        if rename(temporary.path, url.path) != 0 { try? FileManager.default.removeItem(at: temporary) }
    }

    /// Bytes the thumbnail cache holds.
    public func cacheBytes() -> Int64 {
        guard let walker = FileManager.default.enumerator(at: cacheFolder, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total: Int64 = 0
        for case let url as URL in walker {
            total += Int64((try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0)
        }
        return total
    }
}
