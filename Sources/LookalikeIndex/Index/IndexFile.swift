// The one file format of every index (and of library snapshots): a fixed preamble, the method's tag
// (its descriptor text, what `readIndex` dispatches on), a JSON header, the method's payload
// starting at a 64-byte boundary (so float rows can be used in place from a memory mapping), and a
// SHA-256 of everything before it as the last 32 bytes. A file whose checksum, tag or sizes do not
// match is refused with the reason; callers rebuild from the catalogue, never trust it.
//
//   "LKIX" | u32 version | u32 tag length | tag | u32 header length | header JSON | pad | payload | sha256
import Crypto
import Foundation

/// What a file was made from, for files tied to a library: the catalogue's identity (a random id
/// given when the catalogue was created) and the change counter the contents reflect. A file made
/// for another catalogue (one deleted and made again at the same path) is never trusted.
public struct FileOrigin: Sendable, Equatable {
    public var catalogue: String?
    public var counter: Int64
    public init(catalogue: String?, counter: Int64) {
        self.catalogue = catalogue
        self.counter = counter
    }
    /// A file not tied to a library (a test's, a benchmark's).
    public static let detached = FileOrigin(catalogue: nil, counter: 0)
}

package struct IndexFileHeader: Codable, Sendable {
    package var dimension: Int
    package var count: Int
    /// The catalogue's identity the file was made for (nil when not tied to a catalogue).
    package var catalogue: String?
    /// The catalogue's change counter the file reflects (0 when not tied to a catalogue).
    package var catalogueCounter: Int64
    /// Model checksum and vector variant the rows came from (snapshots), when tied to a catalogue.
    package var model: String?
    package var variant: String?
    package var payloadBytes: Int
    /// Method-specific settings (precision, bits, seeds...), and what the file was built from.
    package var fields: [String: String] = [:]

    package init(dimension: Int, count: Int, origin: FileOrigin, model: String? = nil, variant: String? = nil,
         payloadBytes: Int, fields: [String: String] = [:]) {
        self.dimension = dimension
        self.count = count
        catalogue = origin.catalogue
        catalogueCounter = origin.counter
        self.model = model
        self.variant = variant
        self.payloadBytes = payloadBytes
        self.fields = fields
    }
}

package enum IndexFile {
    package static let magic = Array("LKIX".utf8)
    package static let version: UInt32 = 1
    package static let alignment = 64

    /// Streams a file to a temporary name beside `url`, then renames it into place (atomic for
    /// readers: they see the old file or the new one, never half of one).
    package struct Writer {
        package let url: URL
        package let temporary: URL
        package let handle: FileHandle
        package var hasher = SHA256()
        package var written = 0
        package var buffer = Data()

        package init(url: URL, tag: String, header: IndexFileHeader) throws {
            self.url = url
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
                throw IndexError("\(temporary.path): cannot create")
            }
            handle = try FileHandle(forWritingTo: temporary)
            var preamble = Data(IndexFile.magic)
            func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { preamble.append(contentsOf: $0) } }
            u32(IndexFile.version)
            let tagBytes = Array(tag.utf8)
            u32(UInt32(tagBytes.count))
            preamble.append(contentsOf: tagBytes)
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let json = try encoder.encode(header)
            u32(UInt32(json.count))
            preamble.append(json)
            let padding = (IndexFile.alignment - preamble.count % IndexFile.alignment) % IndexFile.alignment
            preamble.append(contentsOf: [UInt8](repeating: 0, count: padding))
            try append(preamble)
        }

        package mutating func append(_ data: Data) throws {
            data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            try handle.write(contentsOf: data)
            written += data.count
        }

        package mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
            // Large payloads go in 16 MB pieces so memory stays flat.
            var offset = 0
            while offset < bytes.count {
                let piece = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + (16 << 20))])
                hasher.update(bufferPointer: piece)
                try handle.write(contentsOf: Data(piece))
                written += piece.count
                offset += piece.count
            }
        }

        package mutating func append<T>(array: [T]) throws {
            try array.withUnsafeBytes { try append($0) }
        }

        package consuming func finish() throws {
            let digest = Data(hasher.finalize())
            try handle.write(contentsOf: digest)
            try handle.synchronize()
            try handle.close()
            if rename(temporary.path, url.path) != 0 {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: temporary)
                throw IndexError("\(url.path): cannot move the new file into place (\(reason))")
            }
        }

        package func abandon() {
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
        }
    }

    /// Writes a whole file: `body` appends the payload; on any error the temporary file is removed
    /// and nothing replaces `url`.
    package static func write(to url: URL, tag: String, header: IndexFileHeader, _ body: (inout Writer) throws -> Void) throws {
        var writer = try Writer(url: url, tag: tag, header: header)
        do {
            try body(&writer)
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// A verified, memory-mapped index file.
    package struct Contents: @unchecked Sendable {
        package let mapping: MappedFile
        package let tag: String
        package let header: IndexFileHeader
        package let payload: UnsafeRawBufferPointer

        package var descriptor: IndexDescriptor {
            get throws { try IndexDescriptor(parsing: tag) }
        }
    }

    /// Maps `url`, checks preamble, sizes and checksum, and, when `catalogue` is given, that the
    /// file was made for that catalogue (a library re-created at the same path has another one).
    package static func read(_ url: URL, catalogue: String?, verifyChecksum: Bool = true) throws -> Contents {
        let path = url.path
        let mapping = try MappedFile(path: path)
        let bytes = mapping.bytes
        func corrupt(_ why: String) -> IndexError { IndexError("\(path): not a valid index file (\(why))") }
        guard bytes.count >= 16 + 32, Array(bytes.prefix(4)) == magic else { throw corrupt("no LKIX tag") }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        guard u32(4) == Int(version) else { throw corrupt("format version \(u32(4)), expected \(version)") }
        let tagLength = u32(8)
        guard tagLength < 256, 12 + tagLength + 4 <= bytes.count else { throw corrupt("bad tag length") }
        let tag = String(decoding: bytes[12..<12 + tagLength], as: UTF8.self)
        let headerAt = 12 + tagLength
        let headerLength = u32(headerAt)
        guard headerAt + 4 + headerLength <= bytes.count - 32 else { throw corrupt("bad header length") }
        let header: IndexFileHeader
        do {
            header = try JSONDecoder().decode(IndexFileHeader.self, from: Data(bytes[headerAt + 4..<headerAt + 4 + headerLength]))
        } catch {
            throw corrupt("unreadable header")
        }
        if let catalogue, header.catalogue != catalogue {
            throw IndexError("\(path): made for another catalogue (\(header.catalogue.map { "library \($0.prefix(8))" } ?? "no identity recorded"), this library is \(catalogue.prefix(8)))")
        }
        let preambleEnd = headerAt + 4 + headerLength
        let payloadAt = (preambleEnd + alignment - 1) / alignment * alignment
        guard payloadAt + header.payloadBytes + 32 == bytes.count else {
            throw corrupt("size \(bytes.count) bytes does not match its header (truncated or extended)")
        }
        if verifyChecksum {
            let digest = SHA256.hash(data: UnsafeRawBufferPointer(rebasing: bytes[0..<bytes.count - 32]))
            guard Array(digest) == Array(bytes[(bytes.count - 32)...]) else { throw corrupt("checksum mismatch") }
            mapping.releaseResidentPages()
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadAt..<payloadAt + header.payloadBytes])
        return Contents(mapping: mapping, tag: tag, header: header, payload: payload)
    }
}
