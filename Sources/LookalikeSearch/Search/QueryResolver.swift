// Turning a query into a vector, for every caller alike (CLI, batch search, server): an image file,
// an http(s) URL, uploaded bytes, or an image already in the library by id or path. Library images
// use their stored vector (no decode); the others are decoded and embedded through the engine's
// async API, off the caller's threads, with the engine's bounded concurrency.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeVerification

public enum QuerySource: Sendable, Equatable {
    case file(String)
    case url(String)
    case upload(bytes: [UInt8], name: String)
    case id(Int64)
    case path(String)

    /// A file path or an http(s) URL, as typed on a command line.
    public static func argument(_ text: String) -> QuerySource {
        ImageFetcher.isURL(text) ? .url(text) : .file(text)
    }

    /// How the query is shown in answers.
    public var summary: String {
        switch self {
        case .file(let p): return p
        case .url(let u): return u
        case .upload(let bytes, let name): return "upload \(name) (\(bytes.count) bytes)"
        case .id(let id): return "id:\(id)"
        case .path(let p): return p
        }
    }

    public static func == (a: QuerySource, b: QuerySource) -> Bool { a.summary == b.summary }
}

/// Why a query could not be answered; `kind` maps onto HTTP statuses for the server.
public struct QueryError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case badRequest, forbidden, notFound, tooLarge, unsupportedType, unprocessable }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

public struct ResolvedQuery: Sendable {
    public let vector: [Float]
    /// The library image queried with, if any (excluded from its own results by default).
    public let imageId: Int64?
    public let summary: String
    public let embedMilliseconds: Double
    /// Top-5 ImageNet labels of an embedded query.
    public let labels: [Label]
    public let width: Int?
    public let height: Int?
    /// The image of an outside query searched whole (nil for library images and regions).
    public var image: QueryImage? = nil

    /// The top-5 labels as an answer shows them ("name:prob; ...", like the catalogue's tags).
    public var tags: String {
        labels.map { "\($0.name):\(String(format: "%.3f", $0.probability))" }.joined(separator: "; ")
    }

    package init(vector: [Float], imageId: Int64?, summary: String, embedMilliseconds: Double, labels: [Label], width: Int?, height: Int?, image: QueryImage? = nil) {
        self.vector = vector
        self.imageId = imageId
        self.summary = summary
        self.embedMilliseconds = embedMilliseconds
        self.labels = labels
        self.width = width
        self.height = height
        self.image = image
    }
}

public final class QueryResolver: Sendable {
    /// The local library `.id` and `.path` queries are looked up in; nil for a resolver that only
    /// embeds images (a remote store resolves its own images).
    public let library: LiveLibrary?
    public let fetchPolicy: FetchPolicy
    private let makeEmbedder: @Sendable (Descriptor) throws -> Embedder
    /// The descriptor the library's vectors were made with (queries are embedded the same way).
    private let descriptor: @Sendable () throws -> Descriptor
    private let verify: @Sendable (ModelInfo) throws -> Void
    private let embedder = Locked<Embedder?>(nil)

    /// `makeEmbedder` is called once, on the first query that needs the network, with the library's
    /// descriptor.
    public init(library: LiveLibrary, fetchPolicy: FetchPolicy = FetchPolicy(),
                makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) {
        self.library = library
        self.fetchPolicy = fetchPolicy
        self.makeEmbedder = makeEmbedder
        descriptor = { try library.catalogue.storedDescriptor() }
        verify = { try library.catalogue.verify(model: $0) }
    }

    /// A resolver without a local library: files, URLs and uploads only; `verify` checks the
    /// engine's model against whatever the vectors it is compared with came from.
    public init(fetchPolicy: FetchPolicy = FetchPolicy(), descriptor: @escaping @Sendable () throws -> Descriptor,
                verify: @escaping @Sendable (ModelInfo) throws -> Void,
                makeEmbedder: @escaping @Sendable (Descriptor) throws -> Embedder) {
        library = nil
        self.fetchPolicy = fetchPolicy
        self.makeEmbedder = makeEmbedder
        self.descriptor = descriptor
        self.verify = verify
    }

    /// The engine, loaded on first use and checked against the library's model.
    public func engine() throws -> Embedder {
        try embedder.withLock { cached in
            if let cached { return cached }
            let made = try makeEmbedder(try descriptor())
            try verify(made.model)
            cached = made
            return made
        }
    }

    private func localLibrary(for source: QuerySource) throws -> LiveLibrary {
        guard let library else { throw QueryError(.badRequest, "\(source.summary): there is no local library to look it up in") }
        return library
    }

    /// The query's vector. With `crop`, only that region of the image is embedded (library images
    /// are then read from their file and embedded, not taken from the store).
    public func resolve(_ source: QuerySource, crop: CropBox? = nil) async throws -> ResolvedQuery {
        switch source {
        case .id(let id):
            let library = try localLibrary(for: source)
            guard let crop else { return try libraryImage(id, summary: source.summary) }
            guard let file = try library.catalogue.details(imageId: id)?.files.first?.path else {
                throw QueryError(.notFound, "no image with id \(id) in \(library.catalogue.path)")
            }
            return try await embedded(summary: source.summary + " box \(crop)", imageId: id) { try await $0.embed(path: file, crop: crop) }
        case .path(let path):
            let library = try localLibrary(for: source)
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            guard let id = try library.catalogue.imageId(path: absolute) else {
                throw QueryError(.notFound, "\(path) is not in the library \(library.catalogue.path)")
            }
            guard let crop else { return try libraryImage(id, summary: path) }
            return try await embedded(summary: path + " box \(crop)", imageId: id) { try await $0.embed(path: absolute, crop: crop) }
        case .file(let path):
            return try await embedded(summary: path, image: crop == nil ? .file(path) : nil) { try await $0.embed(path: path, crop: crop) }
        case .url(let url):
            let bytes = try await ImageFetcher.fetch(url, policy: fetchPolicy)
            return try await embedded(summary: url, image: crop == nil ? .bytes(bytes, name: url) : nil) {
                try await $0.embed(data: bytes, name: url, crop: crop)
            }
        case .upload(let bytes, let name):
            return try await embedded(summary: source.summary, image: crop == nil ? .bytes(bytes, name: name) : nil) {
                try await $0.embed(data: bytes, name: name, crop: crop)
            }
        }
    }

    private func libraryImage(_ id: Int64, summary: String) throws -> ResolvedQuery {
        let library = try localLibrary(for: .id(id))
        guard let vector = try library.store.reconstruct(id) ?? library.catalogue.vector(imageId: id) else {
            throw QueryError(.notFound, "no image with id \(id) in \(library.catalogue.path)")
        }
        return ResolvedQuery(vector: vector, imageId: id, summary: summary, embedMilliseconds: 0, labels: [],
                             width: nil, height: nil)
    }

    /// Decodes and embeds with the engine (loaded on first use); decode failures become QueryErrors.
    public func embedded(summary: String, imageId: Int64? = nil, image source: QueryImage? = nil, _ run: (Embedder) async throws -> (DecodedImage, Embedding)) async throws -> ResolvedQuery {
        let engine = try engine()
        let started = Date()
        let (image, embedding): (DecodedImage, Embedding)
        do {
            (image, embedding) = try await run(engine)
        } catch let error as DecodeError {
            switch error.reason {
            case .notFound: throw QueryError(.notFound, error.description)
            case .notAnImage: throw QueryError(.unsupportedType, error.description)
            case .tooLarge: throw QueryError(.tooLarge, error.description)
            default: throw QueryError(.unprocessable, error.description)
            }
        }
        return ResolvedQuery(vector: embedding.vector, imageId: imageId, summary: summary,
                             embedMilliseconds: Date().timeIntervalSince(started) * 1000, labels: embedding.top5,
                             width: image.width, height: image.height, image: source)
    }
}
