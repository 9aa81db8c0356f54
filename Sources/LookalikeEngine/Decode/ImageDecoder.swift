// Decode: owns turning an image file or an in-memory buffer into the reference geometry
// (shorter side 256 with Pillow-like antialiased bilinear resampling, centre crop 224x224, RGB8
// HWC) through libvips via the CVipsShim C target. Formats are recognised by content (JPEG, PNG,
// GIF first frame, WebP, BMP, TIFF, HEIC/HEIF and AVIF through libheif, JPEG XL through libjxl),
// EXIF orientation (HEIF: irot/imir) is applied, grey / CMYK / 16-bit are converted to 8-bit
// sRGB (HEIF/AVIF/JPEG XL colour profiles too), alpha is flattened on white, large JPEG/WebP use
// shrink-on-load and HEIF/AVIF a big enough stored thumbnail, and images over 100 megapixels by
// header are refused before any pixel is decoded. The photo's EXIF facts (capture time, camera,
// GPS) come with the pixels, or alone from `metadata(path:)` without decoding pixels. Every
// failure is a typed DecodeError naming the file; decoding is thread-safe and keeps no vips cache.
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
        case .notAnImage:
            why = "not an image (content is not \(ImageDecoder.supportedFormats))"
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

/// What a photo file says about itself (from EXIF), each field nil when the file does not say.
public struct PhotoMetadata: Sendable, Codable, Equatable {
    /// Capture time, EXIF DateTimeOriginal as ISO 8601 local time ("2023-06-14T09:41:05"),
    /// with the UTC offset when the file records it (OffsetTimeOriginal: "2023-06-14T09:41:05+02:00").
    public let capturedAt: String?
    /// EXIF Make and Model ("Apple", "iPhone 13").
    public let cameraMake: String?
    public let cameraModel: String?
    /// GPS position in decimal degrees: north and east positive, south and west negative.
    public let gpsLatitude: Double?
    public let gpsLongitude: Double?
    /// Original pixel size after orientation (the size the photo is shown at).
    public let pixelWidth: Int?
    public let pixelHeight: Int?

    public init(capturedAt: String? = nil, cameraMake: String? = nil, cameraModel: String? = nil,
                gpsLatitude: Double? = nil, gpsLongitude: Double? = nil,
                pixelWidth: Int? = nil, pixelHeight: Int? = nil) {
        self.capturedAt = capturedAt
        self.cameraMake = cameraMake
        self.cameraModel = cameraModel
        self.gpsLatitude = gpsLatitude
        self.gpsLongitude = gpsLongitude
        self.pixelWidth = pixelWidth
        self.pixelHeight = pixelHeight
    }

    /// No field known.
    public static let empty = PhotoMetadata()
}

/// An image already in the network's input geometry: 224x224 RGB8, row-major (HWC).
public struct DecodedImage: Sendable {
    /// Original dimensions after EXIF orientation (before resizing and cropping).
    public let width: Int
    public let height: Int
    /// `ImageDecoder.outputSize * ImageDecoder.outputSize * 3` bytes, RGB interleaved.
    public let pixels: [UInt8]
    /// The file's EXIF facts (capture time, camera, GPS) and its original size.
    public let metadata: PhotoMetadata

    public init(width: Int, height: Int, pixels: [UInt8], metadata: PhotoMetadata = .empty) {
        self.width = width
        self.height = height
        self.pixels = pixels
        self.metadata = metadata
    }
}

public enum ImageDecoder {
    /// Side of the square output (the centre crop).
    public static let outputSize = Preprocessing.inputSize
    /// The shorter side is resized to this before cropping.
    public static let resizeShortSide = Preprocessing.resizeShortSide
    /// The formats recognised by content, for messages.
    public static let supportedFormats = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF or JPEG XL"
    /// Decompression-bomb limit on width x height read from the header.
    public static let maxPixels = 100_000_000

    /// Decodes the image file at `path` (format by content, not by extension).
    ///
    /// `storedThumbnail`: a HEIC/AVIF that stores a thumbnail of the photo at least
    /// `resizeShortSide` pixels on its shorter side, with the photo's shape, is decoded from it
    /// (HEVC/AV1 cannot shrink on load, and the full image is then resized to that size anyway:
    /// 10x less work, same embedding within cosine 0.98, see docs/performance.md, "Photo formats:
    /// HEIC and AVIF"). Pass false for the
    /// full image. Other formats ignore it.
    /// `geometry`: the reference's centre crop (default) or the whole image stretched to the square.
    public static func decode(path: String, storedThumbnail: Bool = true,
                              geometry: InputGeometry = .centreCrop) throws(DecodeError) -> DecodedImage {
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = pixels.withUnsafeMutableBufferPointer { out in
            lk_decode_file(path, geometry.shortSideArgument, Int32(outputSize), Int64(maxPixels),
                           storedThumbnail ? 1 : 0, out.baseAddress, &result)
        }
        return try finish(status: status, result: result, pixels: pixels, name: path)
    }

    /// Decodes an in-memory image (uploads, downloaded URLs); `name` is used in errors.
    public static func decode(data: [UInt8], name: String, storedThumbnail: Bool = true,
                              geometry: InputGeometry = .centreCrop) throws(DecodeError) -> DecodedImage {
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = data.withUnsafeBytes { input in
            pixels.withUnsafeMutableBufferPointer { out in
                lk_decode_buffer(input.baseAddress, input.count, geometry.shortSideArgument,
                                 Int32(outputSize), Int64(maxPixels), storedThumbnail ? 1 : 0,
                                 out.baseAddress, &result)
            }
        }
        return try finish(status: status, result: result, pixels: pixels,
                          name: name.isEmpty ? "<memory>" : name)
    }

    /// The photo's EXIF facts and original size, read from the header only (no pixel decode):
    /// cheap enough to fill in images already in a library. Same errors as `decode(path:)`
    /// except the size limit, which does not apply when no pixel is decoded.
    public static func metadata(path: String) throws(DecodeError) -> PhotoMetadata {
        var result = lk_result()
        let status = lk_metadata_file(path, &result)
        try check(status: status, result: result, name: path)
        return photoMetadata(result)
    }

    /// `metadata(path:)` for an in-memory image; `name` is used in errors.
    public static func metadata(data: [UInt8], name: String) throws(DecodeError) -> PhotoMetadata {
        var result = lk_result()
        let status = data.withUnsafeBytes { input in
            lk_metadata_buffer(input.baseAddress, input.count, &result)
        }
        try check(status: status, result: result, name: name.isEmpty ? "<memory>" : name)
        return photoMetadata(result)
    }

    /// Decodes only `crop` (a region of the image after EXIF orientation) into the reference
    /// geometry: the region's shorter side is resized to 256 and centre-cropped like a whole image.
    /// A nil crop is `decode(data:name:)` (the Pillow-exact JPEG path). With `.whole` the region is
    /// stretched to the square instead.
    public static func decode(data: [UInt8], name: String, crop: CropBox?,
                              geometry: InputGeometry = .centreCrop) throws(DecodeError) -> DecodedImage {
        guard let crop else { return try decode(data: data, name: name, geometry: geometry) }
        var result = lk_result()
        var pixels = [UInt8](repeating: 0, count: outputSize * outputSize * 3)
        let status = data.withUnsafeBytes { input in
            pixels.withUnsafeMutableBufferPointer { out in
                lk_decode_buffer_region(input.baseAddress, input.count, geometry.shortSideArgument, Int32(outputSize),
                                        Int64(maxPixels), crop.x, crop.y, crop.width, crop.height,
                                        out.baseAddress, &result)
            }
        }
        return try finish(status: status, result: result, pixels: pixels, name: name.isEmpty ? "<memory>" : name)
    }

    /// The format of an in-memory image by its first bytes, nil when it is none we read.
    public static func format(of bytes: [UInt8]) -> ImageFormat? {
        bytes.withUnsafeBufferPointer { ImageFormat(code: lk_sniff_bytes($0.baseAddress, min($0.count, Int(LK_SNIFF_BYTES)))) }
    }

    /// The format of a file by content, nil when unreadable or not an image we read.
    public static func format(path: String) -> ImageFormat? {
        ImageFormat(code: lk_sniff_file(path))
    }

    /// True when the file's first bytes are those of a supported image format (JPEG, PNG,
    /// GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF, JPEG XL). Cheap: reads at most 64 bytes; false for
    /// unreadable files.
    public static func sniff(path: String) -> Bool {
        lk_sniff_file(path) != Int32(LK_FMT_NONE)
    }

    static func finish(status: Int32, result: lk_result, pixels: [UInt8],
                       name: String) throws(DecodeError) -> DecodedImage {
        try check(status: status, result: result, name: name)
        return DecodedImage(width: Int(result.width), height: Int(result.height), pixels: pixels,
                            metadata: photoMetadata(result))
    }

    /// Throws the DecodeError for a failed status.
    static func check(status: Int32, result: lk_result, name: String) throws(DecodeError) {
        if status == Int32(LK_OK) { return }
        throw error(status: status, result: result, name: name)
    }

    /// The typed error for a shim status other than LK_OK.
    static func error(status: Int32, result: lk_result, name: String) -> DecodeError {
        let message = cString(result.message)
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

    /// The C result's EXIF facts as PhotoMetadata (strings validated, empty ones dropped).
    private static func photoMetadata(_ result: lk_result) -> PhotoMetadata {
        let meta = result.meta
        let make = cString(meta.make), model = cString(meta.model)
        let hasGPS = meta.has_gps != 0
        return PhotoMetadata(
            capturedAt: ExifDate.iso8601(dateTime: cString(meta.date_time_original),
                                         offset: cString(meta.offset_time_original)),
            cameraMake: make.isEmpty ? nil : make,
            cameraModel: model.isEmpty ? nil : model,
            gpsLatitude: hasGPS ? meta.gps_latitude : nil,
            gpsLongitude: hasGPS ? meta.gps_longitude : nil,
            pixelWidth: result.width > 0 ? Int(result.width) : nil,
            pixelHeight: result.height > 0 ? Int(result.height) : nil)
    }

    /// A fixed-size C char array (imported as a tuple) up to its NUL, as UTF-8 (invalid bytes
    /// become U+FFFD: EXIF strings are nominally ASCII but cameras write what they like).
    private static func cString<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw -> String in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// EXIF date strings to ISO 8601.
enum ExifDate {
    /// "YYYY:MM:DD HH:MM:SS" (+ "+HH:MM") -> "YYYY-MM-DDTHH:MM:SS(+HH:MM)"; nil for the blank or
    /// zero dates cameras write when the clock was never set, and for anything malformed.
    static func iso8601(dateTime: String, offset: String) -> String? {
        let d = Array(dateTime.utf8.prefix(19))
        guard d.count == 19 else { return nil }
        let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        guard digitPositions.allSatisfy({ d[$0] >= 0x30 && d[$0] <= 0x39 }),
              d[4] == 0x3A, d[7] == 0x3A, d[10] == 0x20 || d[10] == 0x54, d[13] == 0x3A, d[16] == 0x3A
        else { return nil }
        func number(_ range: Range<Int>) -> Int { range.reduce(0) { $0 * 10 + Int(d[$1] - 0x30) } }
        let (year, month, day) = (number(0..<4), number(5..<7), number(8..<10))
        let (hour, minute, second) = (number(11..<13), number(14..<16), number(17..<19))
        guard year > 0, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
              second <= 60 else { return nil }
        // The digits were validated: the stored text, with ISO separators.
        var text = String(decoding: d[0..<4], as: UTF8.self) + "-" + String(decoding: d[5..<7], as: UTF8.self)
            + "-" + String(decoding: d[8..<10], as: UTF8.self) + "T" + String(decoding: d[11..<19], as: UTF8.self)
        let o = Array(offset.utf8.prefix(6))
        if o.count == 6, o[0] == 0x2B || o[0] == 0x2D, o[3] == 0x3A,
           [1, 2, 4, 5].allSatisfy({ o[$0] >= 0x30 && o[$0] <= 0x39 }) {
            text += String(decoding: o, as: UTF8.self)
        }
        return text
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
    case jpeg, png, gif, webp, bmp, tiff, heif, avif, jxl

    init?(code: Int32) {
        switch code {
        case Int32(LK_FMT_JPEG): self = .jpeg
        case Int32(LK_FMT_PNG): self = .png
        case Int32(LK_FMT_GIF): self = .gif
        case Int32(LK_FMT_WEBP): self = .webp
        case Int32(LK_FMT_BMP): self = .bmp
        case Int32(LK_FMT_TIFF): self = .tiff
        case Int32(LK_FMT_HEIF): self = .heif
        case Int32(LK_FMT_AVIF): self = .avif
        case Int32(LK_FMT_JXL): self = .jxl
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
        case .heif: return "image/heic"
        case .avif: return "image/avif"
        case .jxl: return "image/jxl"
        }
    }

    /// Formats every current browser displays in an <img>; the others are served as a JPEG rendition.
    public static let browserTypes: Set<String> = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"]
    public var displaysInBrowsers: Bool { Self.browserTypes.contains(mimeType) }
}
