// Query parameters parsed into the library's requests, each failure naming the field and why.
import Foundation
import Hummingbird
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct QueryParameters {
    let values: [String: String]

    init(_ request: Request) {
        var values: [String: String] = [:]
        for (key, value) in request.uri.queryParameters where values[String(key)] == nil {
            values[String(key)] = String(value)
        }
        self.values = values
    }

    subscript(_ name: String) -> String? {
        guard let v = values[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    func int(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = self[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw APIError(.badRequest, "\(name): must be an integer from \(range.lowerBound) to \(range.upperBound) (got '\(text)')")
        }
        return value
    }

    func id(_ name: String) throws -> Int64? {
        guard let text = self[name] else { return nil }
        guard let value = Int64(text), value > 0 else {
            throw APIError(.badRequest, "\(name): must be a positive integer image id (got '\(text)')")
        }
        return value
    }

    func float(_ name: String, in range: ClosedRange<Float>) throws -> Float? {
        guard let text = self[name] else { return nil }
        guard let value = Float(text), value.isFinite, range.contains(value) else {
            throw APIError(.badRequest, "\(name): must be a number from \(range.lowerBound) to \(range.upperBound) (got '\(text)')")
        }
        return value
    }

    /// k, metric, method (one of `methods`: the served library's), rerank, min_score, label,
    /// folder, verify as a library search request.
    func searchRequest(_ configuration: ServerConfiguration, methods: [String] = IndexFactory.names) throws -> SearchRequest {
        let k = try int("k", default: configuration.defaultK, in: 1...configuration.maxK)
        var metric = Metric.cosine
        if let name = self["metric"] {
            guard let m = Metric(rawValue: name.lowercased()) else {
                throw APIError(.badRequest, "metric: unknown '\(name)'; known: \(Metric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            metric = m
        }
        var method = IndexDescriptor(method: ExactIndex.methodName)
        if let text = self["method"] {
            do {
                method = try IndexDescriptor(parsing: text, metric: metric)
            } catch {
                throw APIError(.badRequest, "method: \(error)")
            }
            guard methods.contains(method.method) else {
                throw APIError(.badRequest, "method: unknown '\(method.method)'; known: \(methods.joined(separator: ", "))")
            }
        }
        let minScore = try float("min_score", in: -1...1)
        var reranking = Reranking.libraryDefault
        if let text = self["rerank"], text != "default" {
            do {
                reranking = try Reranking(parsing: text)
            } catch {
                throw APIError(.badRequest, "rerank: \(error)")
            }
        }
        var request = SearchRequest(k: k, metric: metric, method: method, minScore: minScore,
                                    restriction: SearchRestriction(label: self["label"], folder: self["folder"]),
                                    reranking: reranking)
        // Absent: decided per query (see SearchRequest.verify).
        request.verify = self["verify"] == nil ? nil : try int("verify", default: 0, in: 0...SearchRequest.maximumVerify)
        return request
    }

    /// `box=x,y,w,h`, fractions of the query image after EXIF orientation.
    func box() throws -> CropBox? {
        guard let text = self["box"] else { return nil }
        do {
            return try CropBox(parsing: text)
        } catch {
            throw APIError(.badRequest, "box: \(error.description)")
        }
    }
}

extension Request {
    /// A path parameter that must be a positive image id.
    func imageId(_ context: LookalikeRequestContext) throws -> Int64 {
        let text = context.parameters.get("id") ?? ""
        guard let id = Int64(text), id > 0 else {
            throw APIError(.badRequest, "id: must be a positive integer image id (got '\(text)')")
        }
        return id
    }
}
