// Small JPEG previews of what the network sees (the 224x224 centre crop), encoded with
// libjpeg-turbo through the C shim: used where a picture of an image must travel inside a file
// (the evaluation report embeds them) without another image library.
import CVipsShim

public enum PreviewEncoder {
    /// JPEG bytes of the decoded image's 224x224 RGB pixels.
    public static func jpeg(_ image: DecodedImage, quality: Int = 70) -> [UInt8]? {
        jpeg(rgb: image.pixels, width: ImageDecoder.outputSize, height: ImageDecoder.outputSize, quality: quality)
    }

    public static func jpeg(rgb: [UInt8], width: Int, height: Int, quality: Int = 70) -> [UInt8]? {
        guard rgb.count == width * height * 3 else { return nil }
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        let status = rgb.withUnsafeBufferPointer { p in
            lk_jpeg_encode_rgb(p.baseAddress, Int32(width), Int32(height), Int32(max(1, min(100, quality))), &out, &length)
        }
        guard status == 0, let out else { return nil }
        defer { lk_encode_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}
