// Renditions for people rather than the network: JPEG thumbnails and display-size copies made by
// libvips' thumbnail operation (shrink-on-load, so a 24 MP JPEG costs a fraction of a full decode),
// EXIF orientation applied, transparency flattened on white, metadata stripped (no GPS leaves in a
// thumbnail). The server caches them on disk; nothing here keeps state.
import CVipsShim

public enum ImageRenderer {
    public struct Rendition: Sendable {
        public let jpeg: [UInt8]
        public let width: Int
        public let height: Int
    }

    /// A JPEG of the image file at `path` whose longer side is at most `longSide` pixels.
    public static func jpeg(path: String, longSide: Int, quality: Int = 82) throws(DecodeError) -> Rendition {
        var result = lk_result()
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        let status = lk_thumbnail_file(path, Int32(max(16, longSide)), Int32(quality), &out, &length, &result)
        defer { if let out { lk_free(out) } }
        guard status == Int32(LK_OK) else { throw ImageDecoder.error(status: status, result: result, name: path) }
        guard let out, length > 0 else { throw DecodeError(path: path, reason: .corrupt("empty thumbnail")) }
        return Rendition(jpeg: Array(UnsafeBufferPointer(start: out, count: length)),
                         width: Int(result.width), height: Int(result.height))
    }
}
