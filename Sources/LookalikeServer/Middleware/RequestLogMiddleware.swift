// Middleware/: what every request goes through. RequestLogMiddleware writes one line per request
// (method, path without its query, status, milliseconds: a query string may hold a URL a user would
// rather not see in logs); ErrorMiddleware turns every error into the API's `{"error": "..."}` with
// the right status (never a crash, never a stack trace to the client); TokenAuthMiddleware guards
// /api when the server has a token.
import Foundation
import Hummingbird
import Logging

struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = LookalikeRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, status: Int(response.status.code), since: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            log(request, status: Int(status), since: started)
            throw error
        }
    }

    private func log(_ request: Request, status: Int, since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        logger.info("\(request.method) \(request.uri.path) \(status) \(String(format: "%.1f", ms)) ms")
    }
}

struct ErrorMiddleware: RouterMiddleware {
    typealias Context = LookalikeRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            if let api = APIError.from(error) { throw api }
            if let http = error as? HTTPError {
                // The router's own errors (no such route, method not allowed) in the API's shape.
                let message = http.body ?? (http.status == .notFound ? "no such route: \(request.method) \(request.uri.path)"
                                                                     : http.status.reasonPhrase)
                var api = APIError(http.status, message)
                api.headers = http.headers
                throw api
            }
            if let other = error as? any HTTPResponseError { throw other }
            logger.error("\(request.method) \(request.uri.path): \(error)")
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }
}

struct TokenAuthMiddleware: RouterMiddleware {
    typealias Context = LookalikeRequestContext
    let token: String
    static let cookieName = "lookalike_token"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.presented(in: request).contains(where: { Self.equal($0, token) }) else {
            var error = APIError(.unauthorized, "authentication required: send Authorization: Bearer <token>, or log in at /login")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        var context = context
        context.authenticated = true
        return try await next(request, context)
    }

    /// Tokens the request carries: the bearer token and the login cookie.
    static func presented(in request: Request) -> [String] {
        var found: [String] = []
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            found.append(String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces))
        }
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0] == cookieName { found.append(kv[1].removingPercentEncoding ?? kv[1]) }
            }
        }
        return found
    }

    /// Comparison whose time does not depend on where the strings differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
