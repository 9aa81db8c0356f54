// Fetches a query image from an http(s) URL with AsyncHTTPClient: a size limit, a timeout and a
// content-type check, so a bad URL gives a clear error instead of a hang or a huge download.
// For a server (`allowPrivateAddresses: false`) it also refuses to be used against the machine's own
// network (request forgery): the host is resolved and every address checked (loopback, private,
// link-local, unique-local, CGNAT, multicast, unspecified are refused), the connection is pinned to
// a checked address (no second lookup that could answer differently), and redirects are followed
// by hand so that each hop is checked the same way.
import AsyncHTTPClient
import Foundation
import LookalikeCatalogue
import LookalikeIndex
import NIOCore

public struct FetchPolicy: Sendable {
    public var maxBytes: Int
    public var timeoutSeconds: Int64
    /// False on a server: loopback, private and link-local destinations are refused.
    public var allowPrivateAddresses: Bool
    public var maxRedirects: Int
    public init(maxBytes: Int = 50 * 1024 * 1024, timeoutSeconds: Int64 = 20, allowPrivateAddresses: Bool = true,
                maxRedirects: Int = 5) {
        self.maxBytes = maxBytes
        self.timeoutSeconds = timeoutSeconds
        self.allowPrivateAddresses = allowPrivateAddresses
        self.maxRedirects = maxRedirects
    }
}

public enum ImageFetcher {
    public static func isURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    public static func fetch(_ url: String, policy: FetchPolicy = FetchPolicy()) async throws -> [UInt8] {
        var current = url
        for _ in 0...max(0, policy.maxRedirects) {
            switch try await fetchOnce(current, original: url, policy: policy) {
            case .body(let bytes): return bytes
            case .redirect(let next): current = next
            }
        }
        throw QueryError(.unprocessable, "\(url): more than \(policy.maxRedirects) redirects")
    }

    enum Outcome { case body([UInt8]), redirect(String) }

    static func fetchOnce(_ url: String, original: String, policy: FetchPolicy) async throws -> Outcome {
        let limitMB = policy.maxBytes / 1024 / 1024
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let rawHost = parsed.host, !rawHost.isEmpty else {
            throw QueryError(.badRequest, "url: '\(original)' is not an http(s) URL")
        }
        let host = rawHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        if !policy.allowPrivateAddresses {
            let port = parsed.port ?? (scheme == "https" ? 443 : 80)
            let addresses = try AddressCheck.resolve(host: host, port: port)
            if let refused = addresses.first(where: { AddressCheck.isInternal($0) }) {
                throw QueryError(.forbidden, "url: \(host) resolves to \(refused.text), a loopback, private or link-local address; refused (start the server with --allow-private-urls to allow)")
            }
            guard let first = addresses.first else {
                throw QueryError(.unprocessable, "url: \(host) has no address")
            }
            // Pin the connection to the address just checked (TLS still verifies the host name).
            configuration.dnsOverride = [host: first.text]
        }
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            let outcome = try await request(url, original: original, client: client, policy: policy, limitMB: limitMB)
            try? await client.shutdown()
            return outcome
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func request(_ url: String, original: String, client: HTTPClient, policy: FetchPolicy, limitMB: Int) async throws -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "lookalike/0.1")
        request.headers.add(name: "Accept", value: "image/*")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(policy.timeoutSeconds))
        } catch {
            throw QueryError(.unprocessable, "\(original): cannot fetch: \(error)")
        }
        if (300..<400).contains(response.status.code), let location = response.headers.first(name: "location"),
           let next = URL(string: location, relativeTo: URL(string: url))?.absoluteString {
            return .redirect(next)
        }
        guard (200..<300).contains(response.status.code) else {
            throw QueryError(.unprocessable, "\(original): HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        let type = response.headers.first(name: "content-type")?.lowercased() ?? ""
        guard type.hasPrefix("image/") || type.hasPrefix("application/octet-stream") else {
            throw QueryError(.unsupportedType, "\(original): not an image (content-type '\(type.isEmpty ? "none" : type)')")
        }
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > policy.maxBytes {
            throw QueryError(.tooLarge, "\(original): image is \(length) bytes, over the \(limitMB) MB limit")
        }
        do {
            let body = try await response.body.collect(upTo: policy.maxBytes)
            return .body(Array(buffer: body))
        } catch is NIOTooManyBytesError {
            throw QueryError(.tooLarge, "\(original): image is over the \(limitMB) MB limit")
        } catch {
            throw QueryError(.unprocessable, "\(original): download failed: \(error)")
        }
    }
}

/// Host resolution and the address ranges a server must not be made to reach.
public enum AddressCheck {
    public struct Address: Sendable, Equatable {
        /// 4 or 16 bytes.
        public let bytes: [UInt8]
        public init(bytes: [UInt8]) { self.bytes = bytes }
        public var text: String {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let family = bytes.count == 4 ? AF_INET : AF_INET6
            let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
            return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        }
    }

    /// Every address of `host` (a name or a literal), or a QueryError when it does not resolve.
    public static func resolve(host: String, port: Int) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            throw QueryError(.unprocessable, "url: cannot resolve host '\(host)'")
        }
        defer { freeaddrinfo(list) }
        var out: [Address] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let current = node {
            if let sa = current.pointee.ai_addr {
                if current.pointee.ai_family == AF_INET {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        withUnsafeBytes(of: sin.pointee.sin_addr) { Array($0) }
                    }
                    out.append(Address(bytes: bytes))
                } else if current.pointee.ai_family == AF_INET6 {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        withUnsafeBytes(of: sin6.pointee.sin6_addr) { Array($0) }
                    }
                    out.append(Address(bytes: bytes))
                }
            }
            node = current.pointee.ai_next
        }
        return out
    }

    /// True for addresses that lead into the machine or its local networks.
    public static func isInternal(_ address: Address) -> Bool {
        let b = address.bytes
        if b.count == 4 { return isInternalV4(b) }
        guard b.count == 16 else { return true }
        if b.allSatisfy({ $0 == 0 }) { return true }                          // ::
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }    // ::1
        if b[0] & 0xFE == 0xFC { return true }                                // fc00::/7 unique local
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return true }                // fe80::/10 link-local
        if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return true }                // fec0::/10 site-local
        if b[0] == 0xFF { return true }                                       // multicast
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
            return isInternalV4(Array(b[12..<16]))                            // ::ffff:a.b.c.d
        }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return isInternalV4(Array(b[12..<16])) }  // ::a.b.c.d
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B {     // 64:ff9b::/96 NAT64
            return isInternalV4(Array(b[12..<16]))
        }
        return false
    }

    static func isInternalV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return true
        case (100, 64...127): return true          // carrier-grade NAT
        case (169, 254): return true               // link-local (cloud metadata)
        case (172, 16...31): return true
        case (192, 168): return true
        case (192, 0) where b[2] == 0: return true // IETF protocol assignments
        case (198, 18...19): return true           // benchmarking
        case (224...255, _): return true           // multicast, reserved, broadcast
        default: return false
        }
    }
}
