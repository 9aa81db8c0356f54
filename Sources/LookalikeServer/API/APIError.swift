// API/ holds the API's edges: its error type (every failure is a status and `{"error": "..."}`
// naming the field and the reason), the answer shapes (Responses.swift, encoded as snake_case
// JSON), parsing of query parameters with clear messages (Parameters.swift), and reading an upload
// from a request body (UploadReader.swift).
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public struct APIError: Error, HTTPResponseError, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    public let message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.code) \(message)" }

    struct Body: Encodable { let error: String }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(Body(error: message))
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The API's answer for an error thrown by the library or the engine.
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let e as APIError: return e
        case let e as QueryError:
            switch e.kind {
            case .badRequest: return APIError(.badRequest, e.message)
            case .forbidden: return APIError(.forbidden, e.message)
            case .notFound: return APIError(.notFound, e.message)
            case .tooLarge: return APIError(.contentTooLarge, e.message)
            case .unsupportedType: return APIError(.unsupportedMediaType, e.message)
            case .unprocessable: return APIError(.unprocessableContent, e.message)
            }
        case let e as DecodeError:
            switch e.reason {
            case .notAnImage: return APIError(.unsupportedMediaType, e.description)
            case .tooLarge: return APIError(.contentTooLarge, e.description)
            case .notFound: return APIError(.notFound, e.description)
            default: return APIError(.unprocessableContent, e.description)
            }
        case let e as CropBox.Invalid: return APIError(.badRequest, "box: \(e.description)")
        case let e as IndexError: return APIError(.badRequest, "method: \(e.message)")
        // The vector store behind the server failed or is unreachable: not the client's fault.
        case let e as StoreError: return APIError(.badGateway, e.description)
        default: return nil
        }
    }
}
