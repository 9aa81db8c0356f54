// Fetches a query image from an http(s) URL with AsyncHTTPClient: a size limit, a timeout and a
// content-type check, so a bad URL gives a clear error instead of a hang or a huge download.
import AsyncHTTPClient
import Foundation
import NIOCore

public struct FetchPolicy: Sendable {
    public var maxBytes: Int
    public var timeoutSeconds: Int64
    public init(maxBytes: Int = 50 * 1024 * 1024, timeoutSeconds: Int64 = 20) {
        self.maxBytes = maxBytes
        self.timeoutSeconds = timeoutSeconds
    }
}

public enum ImageFetcher {
    public static func isURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    public static func fetch(_ url: String, policy: FetchPolicy = FetchPolicy()) async throws -> [UInt8] {
        let limitMB = policy.maxBytes / 1024 / 1024
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "lookalike/0.1")
        request.headers.add(name: "Accept", value: "image/*")
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(policy.timeoutSeconds))
        } catch {
            throw QueryError(.unprocessable, "\(url): cannot fetch: \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw QueryError(.unprocessable, "\(url): HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        let type = response.headers.first(name: "content-type")?.lowercased() ?? ""
        guard type.hasPrefix("image/") || type.hasPrefix("application/octet-stream") else {
            throw QueryError(.unsupportedType, "\(url): not an image (content-type '\(type.isEmpty ? "none" : type)')")
        }
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > policy.maxBytes {
            throw QueryError(.tooLarge, "\(url): image is \(length) bytes, over the \(limitMB) MB limit")
        }
        do {
            let body = try await response.body.collect(upTo: policy.maxBytes)
            return Array(buffer: body)
        } catch is NIOTooManyBytesError {
            throw QueryError(.tooLarge, "\(url): image is over the \(limitMB) MB limit")
        } catch {
            throw QueryError(.unprocessable, "\(url): download failed: \(error)")
        }
    }
}
