// Controllers/: one small type per group of routes, each given the shared services when made and
// adding its routes to a router group. PageController serves the web page and its assets (embedded
// in the binary from Assets/ at build time), the OpenAPI description, and the login form that sets
// the token cookie when the server has a token.
import Crypto
import Foundation
import Hummingbird
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct PageController {
    let services: ServerServices

    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
        let etag: String

        init(_ bytes: [UInt8], _ contentType: String) {
            self.bytes = bytes
            self.contentType = contentType
            etag = "\"" + SHA256.hash(data: bytes).prefix(12).map { String(format: "%02x", $0) }.joined() + "\""
        }
    }

    static let assets: [String: Asset] = [
        "/": Asset(PackageResources.index_html, "text/html; charset=utf-8"),
        "/app.js": Asset(PackageResources.app_js, "text/javascript; charset=utf-8"),
        "/app.css": Asset(PackageResources.app_css, "text/css; charset=utf-8"),
        "/openapi.json": Asset(PackageResources.openapi_json, "application/json; charset=utf-8"),
    ]

    /// The page loads only its own script, style and images (blob: for a pasted or dropped query).
    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    func addRoutes(to router: Router<LookalikeRequestContext>) {
        for path in Self.assets.keys.sorted() {
            router.get(RouterPath(path)) { request, _ in try serve(path, request) }
        }
        // The last `lookalike eval --html` report of this library (a copy is kept beside the catalogue).
        router.get("/report") { _, _ -> Response in
            let url = DerivedFiles.evaluationReport(for: try services.localLibrary(for: "the evaluation report").catalogue)
            guard let bytes = try? Data(contentsOf: url) else {
                throw APIError(.notFound, "no evaluation report yet: run `lookalike eval --html report.html` on this library")
            }
            let headers: HTTPFields = [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                .contentSecurityPolicy: "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
            ]
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Array(bytes))))
        }
        router.get("/login") { _, _ -> Response in
            guard services.configuration.token != nil else { return Self.redirect("/") }
            return Self.loginPage(message: nil, status: .ok)
        }
        router.post("/login") { request, _ -> Response in
            guard let token = services.configuration.token else { return Self.redirect("/") }
            let body = try await request.body.collect(upTo: 8 * 1024)
            let form = String(buffer: body)
            var given = ""
            for pair in form.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2, kv[0] == "token" {
                    given = kv[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
                }
            }
            guard TokenAuthMiddleware.equal(given, token) else {
                return Self.loginPage(message: "That token is not right. Try again.", status: .unauthorized)
            }
            var response = Self.redirect("/")
            let value = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token
            response.headers[.setCookie] = "\(TokenAuthMiddleware.cookieName)=\(value); Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
            return response
        }
    }

    func serve(_ path: String, _ request: Request) throws -> Response {
        guard let asset = Self.assets[path] else { throw APIError(.notFound, "no such page") }
        var headers: HTTPFields = [
            .contentType: asset.contentType,
            .eTag: asset.etag,
            // Revalidate every time (a 304 costs nothing) so a new binary's page is seen at once.
            .cacheControl: "no-cache",
            .init("X-Content-Type-Options")!: "nosniff",
            .init("Referrer-Policy")!: "no-referrer",
        ]
        if path == "/" { headers[.contentSecurityPolicy] = Self.contentSecurityPolicy }
        if request.headers[.ifNoneMatch] == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    static func loginPage(message: String?, status: HTTPResponse.Status) -> Response {
        var html = String(decoding: PackageResources.login_html, as: UTF8.self)
        let note = message.map { "<p class=\"error\" role=\"alert\">\($0)</p>" } ?? ""
        html = html.replacingOccurrences(of: "<!--MESSAGE-->", with: note)
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                                  .contentSecurityPolicy: "default-src 'none'; style-src 'self'; form-action 'self'"],
                         body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
