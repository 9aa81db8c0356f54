// Content hashing: the SHA-256 of a file's bytes identifies an image's content. It confirms whether
// a file whose size or mtime changed really changed, and makes two paths with the same bytes share
// one catalogue entry. Files are memory-mapped, so hashing a large photo does not copy it.
import Crypto
import Foundation
import LookalikeCatalogue
import LookalikeIndex

public enum ContentHash {
    public static func sha256(path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256(bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}
