// Reads an uploaded image from a request: a multipart/form-data part (the first file part, or the
// field named "image" or "file") or the raw body. The size limit is enforced from Content-Length
// before anything is read and again while reading (a body without a length cannot get around it),
// and the type is decided by content (magic bytes), never by the client's name or header.
import Foundation
import Hummingbird
import LookalikeEngine
import MultipartKit
import NIOCore

enum UploadReader {
    struct Upload: Sendable {
        let bytes: [UInt8]
        let name: String
        let format: ImageFormat
    }

    static func read(_ request: Request, limit: Int, fallbackName: String) async throws -> Upload {
        let limitText = "\(limit / 1024 / 1024) MB"
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit + 16 * 1024 {
            throw APIError(.contentTooLarge, "image: upload is \(length) bytes, over the \(limitText) limit")
        }
        let body: ByteBuffer
        do {
            // A little room for multipart headers and boundaries around a file at the limit.
            body = try await request.body.collect(upTo: limit + 16 * 1024)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "image: upload is over the \(limitText) limit")
        }
        let contentType = request.headers[.contentType] ?? ""
        var bytes: [UInt8]
        var name = fallbackName
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            guard let boundary = boundary(contentType) else {
                throw APIError(.badRequest, "image: multipart body without a boundary in Content-Type")
            }
            let part = try filePart(body, boundary: boundary)
            bytes = part.bytes
            if let filename = part.filename, !filename.isEmpty { name = filename }
        } else {
            bytes = Array(buffer: body)
        }
        guard !bytes.isEmpty else {
            throw APIError(.badRequest, "image: the request has no image (send it as the body or as a multipart field 'image')")
        }
        guard bytes.count <= limit else {
            throw APIError(.contentTooLarge, "image: upload is \(bytes.count) bytes, over the \(limitText) limit")
        }
        guard let format = ImageDecoder.format(of: bytes) else {
            throw APIError(.unsupportedMediaType, "image: \(safeName(name)) is not an image (its content is not \(ImageDecoder.supportedFormats))")
        }
        return Upload(bytes: bytes, name: safeName(name), format: format)
    }

    /// A client-given file name as shown back: its last path part, printable, at most 100 characters.
    static func safeName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? "upload"
        let clean = String(last.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
        return clean.isEmpty ? "upload" : String(clean.prefix(100))
    }

    static func boundary(_ contentType: String) -> String? {
        for part in contentType.split(separator: ";") {
            let item = part.trimmingCharacters(in: .whitespaces)
            if item.lowercased().hasPrefix("boundary=") {
                let value = item.dropFirst("boundary=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return value.isEmpty ? nil : value
            }
        }
        return nil
    }

    /// The part holding the file: the first with a filename, else one named image/file.
    static func filePart(_ body: ByteBuffer, boundary: String) throws -> (bytes: [UInt8], filename: String?) {
        final class Collector {
            var headers: [(String, String)] = []
            var data: [UInt8] = []
            var found: (bytes: [UInt8], filename: String?)?
        }
        let collector = Collector()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in collector.headers.append((name.lowercased(), value)) }
        parser.onBody = { buffer in
            if collector.found == nil { collector.data.append(contentsOf: buffer.readableBytesView) }
        }
        parser.onPartComplete = {
            defer {
                collector.headers = []
                collector.data = []
            }
            guard collector.found == nil,
                  let disposition = collector.headers.first(where: { $0.0 == "content-disposition" })?.1 else { return }
            let filename = parameter("filename", in: disposition)
            let field = parameter("name", in: disposition)
            if filename != nil || field == "image" || field == "file" {
                collector.found = (collector.data, filename)
            }
        }
        do {
            try parser.execute(body)
        } catch {
            throw APIError(.badRequest, "image: malformed multipart body (\(error))")
        }
        guard let found = collector.found else {
            throw APIError(.badRequest, "image: the multipart body has no file part (send the file in a field named 'image')")
        }
        return found
    }

    static func parameter(_ name: String, in disposition: String) -> String? {
        for part in disposition.split(separator: ";") {
            let item = part.trimmingCharacters(in: .whitespaces)
            if item.lowercased().hasPrefix(name + "=") {
                return item.dropFirst(name.count + 1).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }
}
