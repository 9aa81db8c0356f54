// A minimal JSON writer for the one answer a loaded server writes thousands of times a second: a
// search answer (20 to 100 results of 5 tags each). Foundation's JSONEncoder builds a tree of
// boxed values and walks it again to serialise it, which measured 15 % of the server's CPU under
// `wrk` (more than the diffusion re-ranking); writing the bytes directly costs a tenth of that.
// Every other answer keeps going through JSONEncoder. Output is plain JSON: strings escaped as
// RFC 8259 requires (quote, backslash, control characters; UTF-8 passed through, slashes
// unescaped like the encoder's `.withoutEscapingSlashes`), numbers in Swift's shortest
// round-trip form, non-finite numbers as null, nil members omitted as the synthesized Codable
// conformances do. A test checks it against JSONEncoder on the same values.
import NIOCore

struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Whether the container being written still has no member (no comma before the next one).
    private var first = true

    init(capacity: Int = 4096) { bytes.reserveCapacity(capacity) }

    mutating func object(_ body: (inout JSONWriter) -> Void) { container("{", "}", body) }

    mutating func array(_ body: (inout JSONWriter) -> Void) { container("[", "]", body) }

    private mutating func container(_ open: Unicode.Scalar, _ close: Unicode.Scalar, _ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: open))
        first = true
        body(&self)
        bytes.append(UInt8(ascii: close))
        first = false
    }

    /// A member's key; the value follows with one of the writing calls (which must not separate).
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        first = true  // the value that follows takes no comma
    }

    mutating func member(_ name: StaticString, _ value: String) { key(name); string(value) }
    mutating func member(_ name: StaticString, _ value: Int) { key(name); number(value) }
    mutating func member(_ name: StaticString, _ value: Int64) { key(name); number(value) }
    mutating func member(_ name: StaticString, _ value: Float) { key(name); number(value) }
    mutating func member(_ name: StaticString, _ value: Double) { key(name); number(value) }
    mutating func member(_ name: StaticString, _ value: Bool) { key(name); raw(value ? "true" : "false") }
    mutating func member(_ name: StaticString, _ value: String?) { if let value { member(name, value) } }
    mutating func member(_ name: StaticString, _ value: Int?) { if let value { member(name, value) } }
    mutating func member(_ name: StaticString, _ value: Int64?) { if let value { member(name, value) } }
    mutating func member(_ name: StaticString, _ value: Float?) { if let value { member(name, value) } }

    mutating func string(_ value: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for (i, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                bytes.append(contentsOf: utf8[start..<i])
                escape(byte)
                start = i + 1
            }
            bytes.append(contentsOf: utf8[start...])
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func number(_ value: Int) { separate(); bytes.append(contentsOf: String(value).utf8) }
    mutating func number(_ value: Int64) { separate(); bytes.append(contentsOf: String(value).utf8) }
    mutating func number(_ value: Float) { raw(value.isFinite ? value.description : "null") }
    mutating func number(_ value: Double) { raw(value.isFinite ? value.description : "null") }

    private mutating func raw(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        default:
            let hex = Array("0123456789abcdef".utf8)
            bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                      hex[Int(byte >> 4)], hex[Int(byte & 15)]])
        }
    }

    private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }
}
