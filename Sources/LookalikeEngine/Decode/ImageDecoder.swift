// Decode: owns turning an image file or an in-memory buffer into the reference geometry
// (shorter side 256 with Pillow-like antialiased bilinear resampling, centre crop 224x224, RGB8
// HWC) through libvips via the CVipsShim C target. Formats are recognised by content (JPEG, PNG,
// GIF first frame, WebP, BMP, TIFF), EXIF orientation is applied, grey / CMYK / 16-bit are
// converted to 8-bit sRGB, alpha is flattened on white, large JPEG/WebP use shrink-on-load, and
// images over 100 megapixels by header are refused before any pixel is decoded. Every failure
// is a typed DecodeError naming the file; decoding is thread-safe and keeps no vips cache.
import CVipsShim

/// Why an image could not be decoded, with the file it concerns.
public struct DecodeError: Error, CustomStringConvertible, Sendable {
    public enum Reason: Sendable, Equatable {
        case notFound
        case emptyFile
        case notAnImage
        case truncated
        case corrupt(String)
        case tooLarge(width: Int, height: Int)
        case unreadable(String)
    }

    /// File path, or the buffer's name ("<memory>" when it has none).
    public let path: String
    public let reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String {
        let why: String
        switch reason {
        case .notFound: why = "file not found"
        case .emptyFile: why = "file is empty"
        case .notAnImage: why = "not an image (content is not JPEG, PNG, GIF, WebP, BMP or TIFF)"
        case .truncated: why = "file is truncated"
        case .corrupt(let detail): why = "corrupt image (\(detail))"
        case .tooLarge(let w, let h):
            let mp = Double(w) * Double(h) / 1_000_000
            let limit = ImageDecoder.maxPixels / 1_000_000
            why = "image too large: \(w)x\(h) is \(Int(mp.rounded())) megapixels (limit \(limit))"
        case .unreadable(let detail): why = "cannot read file (\(detail))"
        }
        return "\(path): \(why)"
    }
}

/// An image already in the network's input geometry: 224x224 RGB8, row-major (HWC).
public struct DecodedImage: Sendable {
    /// Original dimensions after EXIF orientation (before resizing and cropping).
    public let width: Int
    public let height: Int
    /// `ImageDecoder.outputSize * ImageDecoder.outputSize * 3` bytes, RGB interleaved.
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

public enum ImageDecoder {
    /// Side of the square output (the centre crop).
    public static let outputSize = Preprocessing.inputSize
    /// The shorter side is resized to this before cropping.
    public static let resizeShortSide = Preprocessing.resizeShortSide
    /// Decompression-bomb limit on width x height read from the header.
    public static let maxPixels = 100_000_000

    /// Decodes the image file at `path` (format by content, not by extension).
    public static func decode(path: String) throws(DecodeError) -> DecodedImage {
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = pixels.withUnsafeMutableBufferPointer { out in
            lk_decode_file(path, Int32(resizeShortSide), Int32(outputSize), Int64(maxPixels),
                           out.baseAddress, &result)
        }
        return try finish(status: status, result: result, pixels: pixels, name: path)
    }

    /// Decodes an in-memory image (uploads, downloaded URLs); `name` is used in errors.
    public static func decode(data: [UInt8], name: String) throws(DecodeError) -> DecodedImage {
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = data.withUnsafeBytes { input in
            pixels.withUnsafeMutableBufferPointer { out in
                lk_decode_buffer(input.baseAddress, input.count, Int32(resizeShortSide),
                                 Int32(outputSize), Int64(maxPixels), out.baseAddress, &result)
            }
        }
        return try finish(status: status, result: result, pixels: pixels,
                          name: name.isEmpty ? "<memory>" : name)
    }

    /// True when the file's first bytes are those of a supported image format (JPEG, PNG,
    /// GIF, WebP, BMP, TIFF). Cheap: reads at most 32 bytes; false for unreadable files.
    public static func sniff(path: String) -> Bool {
        lk_sniff_file(path) != Int32(LK_FMT_NONE)
    }

    private static func finish(status: Int32, result: lk_result, pixels: [UInt8],
                               name: String) throws(DecodeError) -> DecodedImage {
        if status == Int32(LK_OK) {
            return DecodedImage(width: Int(result.width), height: Int(result.height), pixels: pixels)
        }
        let message = withUnsafeBytes(of: result.message) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        let reason: DecodeError.Reason
        switch status {
        case Int32(LK_NOT_FOUND): reason = .notFound
        case Int32(LK_EMPTY): reason = .emptyFile
        case Int32(LK_NOT_IMAGE): reason = .notAnImage
        case Int32(LK_TRUNCATED): reason = .truncated
        case Int32(LK_TOO_LARGE):
            reason = .tooLarge(width: Int(result.width), height: Int(result.height))
        case Int32(LK_UNREADABLE): reason = .unreadable(message)
        default: reason = .corrupt(message.isEmpty ? "decoder failed" : message)
        }
        throw DecodeError(path: name, reason: reason)
    }
}
