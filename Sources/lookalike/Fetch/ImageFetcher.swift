// Fetches a query image from an http(s) URL with AsyncHTTPClient: a size limit, a timeout and a
// content-type check, so a bad URL gives a clear error instead of a hang or a huge download.
import AsyncHTTPClient
import Foundation
import NIOCore

enum ImageFetcher {
    static let maxBytes = 50 * 1024 * 1024
    static let timeout: TimeAmount = .seconds(20)

    static func isURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    static func fetch(_ url: String) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "lookalike/0.1")
        request.headers.add(name: "Accept", value: "image/*")
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: timeout)
        } catch {
            throw Failure(message: "\(url): cannot fetch: \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw Failure(message: "\(url): HTTP \(response.status.code) \(response.status.reasonPhrase)")
        }
        let type = response.headers.first(name: "content-type")?.lowercased() ?? ""
        guard type.hasPrefix("image/") || type.hasPrefix("application/octet-stream") else {
            throw Failure(message: "\(url): not an image (content-type '\(type.isEmpty ? "none" : type)')")
        }
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > maxBytes {
            throw Failure(message: "\(url): image is \(length) bytes, over the \(maxBytes / 1024 / 1024) MB limit")
        }
        do {
            let body = try await response.body.collect(upTo: maxBytes)
            return Array(buffer: body)
        } catch is NIOTooManyBytesError {
            throw Failure(message: "\(url): image is over the \(maxBytes / 1024 / 1024) MB limit")
        } catch {
            throw Failure(message: "\(url): download failed: \(error)")
        }
    }
}
