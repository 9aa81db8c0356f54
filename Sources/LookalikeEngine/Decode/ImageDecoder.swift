// Decode: owns turning an image file or an in-memory buffer into the reference geometry
// (shorter side 256 with Pillow-like antialiased bilinear resampling, centre crop 224x224, RGB8
// HWC) through libvips via the CVipsShim C target. Formats are recognised by content (JPEG, PNG,
// GIF first frame, WebP, BMP, TIFF), EXIF orientation is applied, grey / CMYK / 16-bit are
// converted to 8-bit sRGB, alpha is flattened on white, large JPEG/WebP use shrink-on-load, and
// images over 100 megapixels by header are refused before any pixel is decoded. Every failure
// is a typed DecodeError naming the file; decoding is thread-safe and keeps no vips cache.
import CVipsShim
import Foundation

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
    public static let outputSize = 224
    /// The shorter side is resized to this before cropping.
    public static let resizeShortSide = 256
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

    /// Decodes only `crop` (a region of the image after EXIF orientation) into the reference
    /// geometry: the region's shorter side is resized to 256 and centre-cropped like a whole image.
    /// A nil crop is `decode(data:name:)` (the Pillow-exact JPEG path).
    public static func decode(data: [UInt8], name: String, crop: CropBox?) throws(DecodeError) -> DecodedImage {
        guard let crop else { return try decode(data: data, name: name) }
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = data.withUnsafeBytes { input in
            pixels.withUnsafeMutableBufferPointer { out in
                lk_decode_buffer_region(input.baseAddress, input.count, Int32(resizeShortSide), Int32(outputSize),
                                        Int64(maxPixels), crop.x, crop.y, crop.width, crop.height,
                                        out.baseAddress, &result)
            }
        }
        return try finish(status: status, result: result, pixels: pixels, name: name.isEmpty ? "<memory>" : name)
    }

    /// The format of an in-memory image by its first bytes, nil when it is none we read.
    public static func format(of bytes: [UInt8]) -> ImageFormat? {
        bytes.withUnsafeBufferPointer { ImageFormat(code: lk_sniff_bytes($0.baseAddress, min($0.count, 32))) }
    }

    /// The format of a file by content, nil when unreadable or not an image we read.
    public static func format(path: String) -> ImageFormat? {
        ImageFormat(code: lk_sniff_file(path))
    }

    /// True when the file's first bytes are those of a supported image format (JPEG, PNG,
    /// GIF, WebP, BMP, TIFF). Cheap: reads at most 32 bytes; false for unreadable files.
    public static func sniff(path: String) -> Bool {
        lk_sniff_file(path) != Int32(LK_FMT_NONE)
    }

    static func finish(status: Int32, result: lk_result, pixels: [UInt8],
                       name: String) throws(DecodeError) -> DecodedImage {
        if status == Int32(LK_OK) {
            return DecodedImage(width: Int(result.width), height: Int(result.height), pixels: pixels)
        }
        throw error(status: status, result: result, name: name)
    }

    /// The typed error for a shim status other than LK_OK.
    static func error(status: Int32, result: lk_result, name: String) -> DecodeError {
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
        return DecodeError(path: name, reason: reason)
    }
}

/// A region of an image in fractions of its width and height (after EXIF orientation):
/// x, y of the top-left corner in 0..<1, width and height in (0, 1], inside the image.
public struct CropBox: Sendable, Equatable, Codable, CustomStringConvertible {
    public let x: Double, y: Double, width: Double, height: Double

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(x: Double, y: Double, width: Double, height: Double) throws(Invalid) {
        let all = [x, y, width, height]
        guard all.allSatisfy({ $0.isFinite }) else { throw Invalid(description: "box values must be numbers") }
        guard x >= 0, y >= 0, x < 1, y < 1 else { throw Invalid(description: "box x and y must be fractions in 0..<1 (got \(x), \(y))") }
        guard width > 0, height > 0, width <= 1, height <= 1 else {
            throw Invalid(description: "box width and height must be fractions in (0, 1] (got \(width), \(height))")
        }
        // A little tolerance for rounding in clients; the decoder clamps to the image.
        guard x + width <= 1.001, y + height <= 1.001 else {
            throw Invalid(description: "box must lie inside the image (x + width and y + height at most 1)")
        }
        self.x = x
        self.y = y
        self.width = min(width, 1 - x)
        self.height = min(height, 1 - y)
    }

    /// Parses "x,y,w,h" (fractions of the image).
    public init(parsing text: String) throws(Invalid) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3] else {
            throw Invalid(description: "box must be four comma-separated fractions x,y,w,h (got '\(text)')")
        }
        try self.init(x: x, y: y, width: w, height: h)
    }

    public var description: String { [x, y, width, height].map { String(format: "%.4f", $0) }.joined(separator: ",") }
}

/// An image format recognised by content, with what a web browser can show.
public enum ImageFormat: String, Sendable, CaseIterable, Codable {
    case jpeg, png, gif, webp, bmp, tiff

    init?(code: Int32) {
        switch code {
        case Int32(LK_FMT_JPEG): self = .jpeg
        case Int32(LK_FMT_PNG): self = .png
        case Int32(LK_FMT_GIF): self = .gif
        case Int32(LK_FMT_WEBP): self = .webp
        case Int32(LK_FMT_BMP): self = .bmp
        case Int32(LK_FMT_TIFF): self = .tiff
        default: return nil
        }
    }

    public var mimeType: String {
        switch self {
        case .jpeg: return "image/jpeg"
        case .png: return "image/png"
        case .gif: return "image/gif"
        case .webp: return "image/webp"
        case .bmp: return "image/bmp"
        case .tiff: return "image/tiff"
        }
    }

    /// Formats every current browser displays in an <img>; the others are served as a JPEG rendition.
    public static let browserTypes: Set<String> = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"]
    public var displaysInBrowsers: Bool { Self.browserTypes.contains(mimeType) }
}
