// The per-request context: Hummingbird's core storage, answers encoded as snake_case JSON (the
// API's style), and whether the request was authenticated by the token middleware.
import Foundation
import Hummingbird

public struct LookalikeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by TokenAuthMiddleware (always true when the server has no token).
    public var authenticated = false

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    public var responseEncoder: JSONEncoder { Self.encoder }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}
