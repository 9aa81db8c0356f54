// What `lookalike serve` was asked for: where to listen, the optional token, what may be shown and
// fetched, and the limits that keep one client from starving the others.
import Foundation

public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// When set, every /api route requires it (Authorization: Bearer, or the login cookie).
    public var token: String?
    /// Show GPS positions and absolute paths (otherwise paths are relative to the library's folders).
    public var showPrivate = false
    /// Allow ?url= fetches of loopback, private and link-local addresses.
    public var allowPrivateURLs = false
    public var maxUploadBytes = 20 * 1024 * 1024
    public var defaultK = 20
    /// The largest k a search may ask for (100 by default; `--max-k` raises it up to `kCeiling`).
    public var maxK = 100
    public static let kCeiling = 1000
    /// Uploads read and embedded at once; the rest wait before their bodies are read.
    public var concurrentUploads = 8
    /// Seconds between looks at the catalogue's change journal.
    public var refreshInterval = 1.0
    /// Answer library images from the answer lists `index` makes (see AnswerLists); off: compute
    /// every search.
    public var answerLists = true
    /// Batch window for concurrent in-library searches, seconds.
    public var batchWindow = 0.001

    public init() {}

    /// True when only this machine can connect.
    public var isLoopback: Bool { Self.isLoopback(host) }

    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }
}
