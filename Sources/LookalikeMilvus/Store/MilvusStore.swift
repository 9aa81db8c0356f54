// Store/ holds the remote vector stores a library can be pushed to and searched in when one machine
// is not enough. MilvusStore talks to a Milvus 2.3 server over its REST API v1 (AsyncHTTPClient, no
// gRPC): one collection per library, inner product on the engine's L2-normalised vectors (= cosine),
// the content hash kept as a field and used as the identity (REST v1 collections have automatic
// primary keys and refuse upserts, so idempotence is query-then-insert, and duplicates a race could
// leave are removed afterwards, keeping the smallest id). The engine's model (id, weights checksum,
// dimension) is written into the collection's description and checked on every open, so vectors of
// two models never meet. Catalogue+RemoteSent is the worker's local record of what a store holds;
// MilvusSync pushes a library with it. Thumbnails are not stored: a serving node renders them from
// the path (shared storage) like the local library does; image bytes would bloat every row of the
// collection that search has to load.
import AsyncHTTPClient
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeSearch
import NIOCore

/// Why a store could not do what was asked; always names the store.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let store: String
    public let reason: String
    public init(store: String, _ reason: String) {
        self.store = store
        self.reason = reason
    }
    public var description: String { "store \(store): \(reason)" }
}

/// `milvus://host:port/collection` (port defaults to 19530).
public struct MilvusAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let collection: String

    public init(host: String, port: Int, collection: String) {
        self.host = host
        self.port = port
        self.collection = collection
    }

    public init(parsing text: String) throws {
        guard let url = URLComponents(string: text), url.scheme == "milvus", let host = url.host, !host.isEmpty else {
            throw StoreError(store: text, "not a store address: expected milvus://HOST:PORT/COLLECTION")
        }
        let name = url.path.split(separator: "/").joined(separator: "/")
        // Milvus collection names: a letter or underscore, then letters, digits, underscores.
        guard let first = name.first, first.isLetter || first == "_",
              name.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }), name.count <= 255 else {
            throw StoreError(store: text, "collection name \"\(name)\" must be letters, digits and underscores, starting with a letter")
        }
        self.init(host: host, port: url.port ?? 19530, collection: name)
    }

    public var description: String { "milvus://\(host):\(port)/\(collection)" }
    var base: String { "http://\(host):\(port)/v1/vector" }
}

/// One search hit from the store.
public struct StoreHit: Sendable, Codable, Equatable {
    public let rank: Int
    /// The row's id in the collection.
    public var id: Int64 = 0
    public let hash: String
    public let path: String
    public let label: String
    public let tags: String
    /// Inner product of the unit vectors: the cosine similarity, as the local cosine score.
    public let score: Float
    /// File size and capture date, when asked for (`StoreLibrary` shows them).
    public var size: Int64? = nil
    public var captured: String? = nil
    /// The row's vector, when asked for (query expansion needs the neighbours' vectors).
    public var vector: [Float]? = nil

    /// The same hit with another score (an answer ordered by a blend, not by the raw inner product).
    func scored(_ score: Float) -> StoreHit {
        var hit = StoreHit(rank: rank, hash: hash, path: path, label: label, tags: tags, score: score)
        hit.id = id
        hit.size = size
        hit.captured = captured
        hit.vector = vector
        return hit
    }
}

public final class MilvusStore: Sendable {
    public let address: MilvusAddress
    let client: HTTPClient
    let timeout: TimeAmount
    /// Milvus caps one query's offset + limit at 16384 rows.
    public static let queryWindow = 16384
    /// Marks the collection's description so a foreign collection is never written to.
    static let descriptionPrefix = "lookalike"

    /// The stores' own client: a refused or silent connection fails at once (AsyncHTTPClient's
    /// default retries connecting until the request's deadline, so a stopped Milvus looked like a
    /// 30 s hang). Process-wide, never shut down (a static is never deinitialised).
    public static let defaultClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(address: MilvusAddress, client: HTTPClient = MilvusStore.defaultClient, timeout: TimeAmount = .seconds(30)) {
        self.address = address
        self.client = client
        self.timeout = timeout
    }

    var store: String { address.description }

    static func description(for model: ModelInfo) -> String {
        "\(descriptionPrefix) model=\(model.id) checksum=\(model.checksum) dimension=\(model.dimension)"
    }

    // MARK: collection

    /// What `describe` says about the collection (nil: it does not exist).
    public struct Collection: Sendable {
        public let description: String
        public let dimension: Int?
        public let metric: String?
        public let indexName: String?
        public let load: String?
    }

    public func describe() async throws -> Collection? {
        let answer = try await call("GET", "/collections/describe?collectionName=\(address.collection)", body: nil, allowCodes: [100])
        guard answer.code == 200, let data = answer.data as? [String: Any] else { return nil }
        let fields = data["fields"] as? [[String: Any]] ?? []
        var dimension: Int?
        for field in fields {
            if let type = field["type"] as? String, type.hasPrefix("FloatVector("), let d = Int(type.dropFirst(12).dropLast()) {
                dimension = d
            }
        }
        let index = (data["indexes"] as? [[String: Any]])?.first
        return Collection(description: data["description"] as? String ?? "", dimension: dimension,
                          metric: index?["metricType"] as? String, indexName: index?["indexName"] as? String,
                          load: data["load"] as? String)
    }

    /// Creates the collection for `model`, or checks that the existing one was made for it.
    /// Returns what describe says about it.
    @discardableResult
    public func prepare(model: ModelInfo, loadTimeout: Double = 120) async throws -> Collection {
        if let existing = try await describe() {
            try check(existing, model: model)
            return try await loaded(existing, timeout: loadTimeout)
        }
        // Refused (65535): another worker may have created it between our describe and create,
        // so theirs is checked like ours.
        let answer = try await createRequest(description: Self.description(for: model), dimension: model.dimension,
                                             allowCodes: [65535])
        guard let made = try await describe() else {
            throw StoreError(store: store, answer.code == 200 ? "the collection was created but describe does not find it"
                                                              : "cannot create the collection: \(answer.message)")
        }
        try check(made, model: model)
        return try await loaded(made, timeout: loadTimeout)
    }

    /// The create request: `dimension`-d vectors, inner product, automatic ids, this description.
    private func createRequest(description: String, dimension: Int, allowCodes: Set<Int> = []) async throws -> Answer {
        try await call("POST", "/collections/create", body: [
            "collectionName": address.collection, "dimension": dimension, "metricType": "IP",
            "primaryField": "id", "vectorField": "vector", "description": description,
        ], allowCodes: allowCodes)
    }

    /// Waits until the collection is loaded: queries and searches of a collection still loading
    /// (just created, or a restarted Milvus reloading it) are refused with "collection not loaded".
    public func loaded(_ collection: Collection, timeout: Double = 120) async throws -> Collection {
        var current = collection
        let deadline = Date().addingTimeInterval(timeout)
        while current.load != "LoadStateLoaded" {
            guard Date() < deadline else {
                throw StoreError(store: store, "collection \(address.collection) is not loaded after \(Int(timeout)) s (state \(current.load ?? "unknown"))")
            }
            try await Task.sleep(nanoseconds: 250_000_000)
            guard let next = try await describe() else {
                throw StoreError(store: store, "collection \(address.collection) disappeared while loading")
            }
            current = next
        }
        return current
    }

    public func check(_ collection: Collection, model: ModelInfo) throws {
        let expected = Self.description(for: model)
        guard collection.description.hasPrefix(Self.descriptionPrefix + " ") else {
            throw StoreError(store: store, "collection \(address.collection) was not made by lookalike (description \"\(collection.description)\"); use another collection name")
        }
        guard collection.description == expected, collection.dimension == model.dimension else {
            throw StoreError(store: store, """
                collection \(address.collection) holds vectors of another model (\(collection.description), \
                \(collection.dimension.map { "\($0)-d" } ?? "unknown dimension")) but the engine has \(expected); \
                vectors of different models cannot be compared: use another collection name
                """)
        }
        if let metric = collection.metric, metric != "IP" {
            throw StoreError(store: store, "collection \(address.collection) ranks by \(metric), lookalike needs IP (inner product)")
        }
    }

    /// Creates a collection of `dimension`-d vectors (inner product, automatic ids) with this
    /// description, and waits until it is loaded. For collections other than a library's own (the
    /// re-ranking companion); `prepare` makes and checks a library's.
    func create(description: String, dimension: Int, loadTimeout: Double = 120) async throws -> Collection {
        _ = try await createRequest(description: description, dimension: dimension)
        guard let made = try await describe() else {
            throw StoreError(store: store, "the collection was created but describe does not find it")
        }
        return try await loaded(made, timeout: loadTimeout)
    }

    /// Drops the collection and its rows (nothing happens when it does not exist).
    func drop() async throws {
        guard try await describe() != nil else { return }
        _ = try await call("POST", "/collections/drop", body: ["collectionName": address.collection])
    }

    // MARK: rows

    /// Inserts `entities` (one request; callers batch) and returns the ids Milvus gave them.
    @discardableResult
    public func insert(_ entities: [RemoteEntity]) async throws -> [Int64] {
        try await insert(json: try Self.insertBody(collection: address.collection, entities, store: store), rows: entities.count)
    }

    /// Inserts rows of a vector and other fields (one request; callers batch).
    @discardableResult
    func insert<Fields: Encodable>(vectors: [[Float]], fields: [Fields]) async throws -> [Int64] {
        try await insert(json: try Self.insertBody(collection: address.collection, vectors: vectors, fields: fields,
                                                   names: (0..<vectors.count).map { "row \($0)" }, store: store),
                         rows: vectors.count)
    }

    private func insert(json: [UInt8], rows: Int) async throws -> [Int64] {
        guard rows > 0 else { return [] }
        let answer = try await call("POST", "/insert", json: json)
        let data = answer.data as? [String: Any]
        let ids = (data?["insertIds"] as? [Any] ?? []).compactMap(Self.int64)
        guard ids.count == rows else {
            throw StoreError(store: store, "insert of \(rows) rows answered \(ids.count) ids")
        }
        return ids
    }

    /// The row ids held for each of `hashes` (a hash with no row is absent; more than one id is a
    /// duplicate to remove).
    public func ids(forHashes hashes: [String]) async throws -> [String: [Int64]] {
        var found: [String: [Int64]] = [:]
        for chunk in hashes.chunked(500).map(Array.init) {
            let rows = try await query(filter: "hash in \(Self.list(chunk))", fields: ["hash"])
            for row in rows {
                if let hash = row["hash"] as? String, let id = row["id"].flatMap(Self.int64) { found[hash, default: []].append(id) }
            }
        }
        return found
    }

    /// Rows matching a boolean expression, at most `queryWindow` of them (`offset` + `limit` at
    /// most `queryWindow`: Milvus pages no further).
    public func query(filter: String, fields: [String], limit: Int = queryWindow, offset: Int = 0) async throws -> [[String: Any]] {
        var body: [String: Any] = ["collectionName": address.collection, "filter": filter,
                                   "outputFields": fields, "limit": limit]
        if offset > 0 { body["offset"] = offset }
        let answer = try await call("POST", "/query", body: body)
        return answer.data as? [[String: Any]] ?? []
    }

    /// How many rows match a boolean expression ("id > 0": all).
    public func count(filter: String = "id > 0") async throws -> Int {
        // count(*) refuses pagination, and REST v1 pages unless the limit is 0.
        let answer = try await call("POST", "/query", body: ["collectionName": address.collection, "filter": filter,
                                                             "outputFields": ["count(*)"], "limit": 0])
        let row = (answer.data as? [[String: Any]])?.first
        guard let value = row?["count(*)"], let count = Self.int64(value) else {
            throw StoreError(store: store, "count(*) answered no number")
        }
        return Int(count)
    }

    /// Deletes the rows with these ids.
    public func delete(ids: [Int64]) async throws {
        for chunk in ids.chunked(1000).map(Array.init) {
            _ = try await call("POST", "/delete", body: ["collectionName": address.collection,
                                                         "filter": "id in [\(chunk.map(String.init).joined(separator: ","))]"])
        }
    }

    /// Deletes every row of these images.
    public func delete(hashes: [String]) async throws {
        for chunk in hashes.chunked(500).map(Array.init) {
            _ = try await call("POST", "/delete", body: ["collectionName": address.collection, "filter": "hash in \(Self.list(chunk))"])
        }
    }

    /// The top `k` rows by inner product with `vector` (a unit vector of the collection's model),
    /// optionally only rows matching `filter` (a Milvus boolean expression).
    /// `details` adds each row's size and capture date, `vectors` its vector.
    public func search(vector: [Float], k: Int, filter: String? = nil, details: Bool = false,
                       vectors: Bool = false) async throws -> [StoreHit] {
        var fields = ["hash", "path", "label", "tags"]
        if details { fields += ["size", "captured"] }
        if vectors { fields.append("vector") }
        let rows = try await searchRows(vector: vector, k: k, fields: fields, filter: filter)
        return rows.enumerated().map { i, row in
            var hit = StoreHit(rank: i + 1, hash: row["hash"] as? String ?? "", path: row["path"] as? String ?? "",
                               label: row["label"] as? String ?? "", tags: row["tags"] as? String ?? "",
                               score: Float((row["distance"] as? NSNumber)?.doubleValue ?? .nan))
            hit.id = row["id"].flatMap(Self.int64) ?? 0
            if details {
                hit.size = row["size"].flatMap(Self.int64)
                hit.captured = row["captured"] as? String
            }
            if vectors { hit.vector = Self.floats(row["vector"]) }
            return hit
        }
    }

    /// The top `k` rows by inner product with `vector`, as Milvus answers them: `fields`, "id" and
    /// "distance" (the inner product).
    func searchRows(vector: [Float], k: Int, fields: [String], filter: String? = nil) async throws -> [[String: Any]] {
        var body: [String: Any] = ["collectionName": address.collection, "vector": vector.map { Double($0) },
                                   "outputFields": fields, "limit": k]
        if let filter { body["filter"] = filter }
        let answer = try await call("POST", "/search", body: body)
        return answer.data as? [[String: Any]] ?? []
    }

    /// The rows of these content hashes (`fields` and id; an image with duplicate rows answers each).
    func rows(hashes: [String], fields: [String]) async throws -> [[String: Any]] {
        var rows: [[String: Any]] = []
        for chunk in Array(Set(hashes)).chunked(256).map(Array.init) {
            rows += try await query(filter: "hash in \(Self.list(chunk))", fields: fields)
        }
        return rows
    }

    /// Every row's `fields` (and id). A query answers at most `queryWindow` rows, so the rows are
    /// read in buckets of their content hash's leading hex digits, split further while a bucket
    /// fills the window.
    public func allRows(fields: [String]) async throws -> [[String: Any]] {
        var rows: [[String: Any]] = []
        var prefixes = (0..<16).map { String($0, radix: 16) }
        while let prefix = prefixes.popLast() {
            let found = try await query(filter: "hash like \"\(prefix)%\"", fields: fields)
            if found.count >= Self.queryWindow {
                guard prefix.count < 8 else { throw StoreError(store: address.description, "more than \(Self.queryWindow) rows share the hash prefix \(prefix)") }
                prefixes += (0..<16).map { prefix + String($0, radix: 16) }
            } else {
                rows += found
            }
        }
        return rows
    }

    /// The stored vectors of these rows.
    public func vectors(ids: [Int64]) async throws -> [Int64: [Float]] {
        var out: [Int64: [Float]] = [:]
        for chunk in ids.chunked(256).map(Array.init) {
            let rows = try await query(filter: "id in [\(chunk.map(String.init).joined(separator: ","))]", fields: ["vector"])
            for row in rows {
                guard let id = row["id"].flatMap(Self.int64), let vector = Self.floats(row["vector"]) else { continue }
                out[id] = vector
            }
        }
        return out
    }

    /// `x` with 7 decimals and no trailing zeros ("-0.0123457", "0.5", "0"). Milvus parses each
    /// insert's JSON on its proxy, and that parse is what limits ingest (measured: 27 % fewer bytes
    /// than Float's shortest round-trip form, whose small values take exponents, gave 20 % more
    /// vectors/s). The error, at most 5e-8 per component, moves a cosine of unit vectors by at most
    /// 5e-8 * sqrt(dimension) (2e-6 at 1280), below what ranking or a displayed score can show.
    static func appendFixed7(_ x: Float, to out: inout [UInt8]) {
        let scaled = (Double(x) * 1e7).rounded()
        guard scaled.isFinite, abs(scaled) < 9e15 else {
            out += x.description.utf8
            return
        }
        var v = Int64(scaled)
        if v == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        if v < 0 {
            out.append(UInt8(ascii: "-"))
            v = -v
        }
        out += String(v / 10_000_000).utf8
        var fraction = v % 10_000_000
        guard fraction > 0 else { return }
        var digits = 7
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        out.append(UInt8(ascii: "."))
        var text = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        var i = digits - 1
        while fraction > 0 {
            text[i] = UInt8(ascii: "0") + UInt8(fraction % 10)
            fraction /= 10
            i -= 1
        }
        out += text
    }

    /// The insert request, written by hand: boxing 1280 numbers per row into NSNumbers for
    /// JSONSerialization cost more than the request itself. Vector components (of unit vectors, so
    /// within [-1, 1]) are written with 7 decimals (see `appendFixed7`); the other fields go through
    /// JSONEncoder (escaping).
    static func insertBody(collection: String, _ entities: [RemoteEntity], store: String) throws -> [UInt8] {
        struct Fields: Encodable {
            let hash: String, path: String, label: String, size: Int64, tags: String
            let captured: String?
        }
        return try insertBody(collection: collection, vectors: entities.map(\.vector),
                              fields: entities.map { Fields(hash: $0.contentHash, path: $0.path, label: $0.label, size: $0.size,
                                                            tags: $0.tags, captured: $0.capturedAt) },
                              names: entities.map(\.path), store: store)
    }

    /// The same for any rows: `vectors[i]` with the fields of `fields[i]` (`names[i]` names the row
    /// in errors).
    static func insertBody<Fields: Encodable>(collection: String, vectors: [[Float]], fields: [Fields], names: [String],
                                              store: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        var out: [UInt8] = []
        out.reserveCapacity(vectors.count * (vectors.first?.count ?? 0) * 12 + 256)
        out += Array("{\"collectionName\":".utf8) + (try encoder.encode(collection)) + Array(",\"data\":[".utf8)
        for (i, (vector, row)) in zip(vectors, fields).enumerated() {
            guard vector.allSatisfy(\.isFinite) else {
                throw StoreError(store: store, "the vector of \(i < names.count ? names[i] : "row \(i)") is not finite; re-index it")
            }
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array("{\"vector\":[".utf8)
            for (j, x) in vector.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                appendFixed7(x, to: &out)
            }
            out += Array("],".utf8)
            out += try encoder.encode(row).dropFirst()  // the fields object without its opening brace
        }
        out += Array("]}".utf8)
        return out
    }

    // MARK: transport

    struct Answer {
        let code: Int
        let message: String
        let data: Any?
    }

    /// One REST call. Transport failures and Milvus error codes become a StoreError naming the
    /// store, the operation and the reason; `allowCodes` are Milvus codes the caller handles.
    func call(_ method: String, _ path: String, body: [String: Any]?, allowCodes: Set<Int> = []) async throws -> Answer {
        try await call(method, path, json: body.map { [UInt8](try JSONSerialization.data(withJSONObject: $0)) }, allowCodes: allowCodes)
    }

    func call(_ method: String, _ path: String, json: [UInt8]?, allowCodes: Set<Int> = []) async throws -> Answer {
        let operation = path.split(separator: "?").first.map(String.init) ?? path
        var request = HTTPClientRequest(url: address.base + path)
        request.method = method == "GET" ? .GET : .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let json { request.body = .bytes(ByteBuffer(bytes: json)) }
        let bytes: ByteBuffer
        let status: UInt
        do {
            let response = try await client.execute(request, timeout: timeout)
            status = response.status.code
            bytes = try await response.body.collect(upTo: 256 << 20)
        } catch {
            throw StoreError(store: store, "\(operation) failed: cannot reach Milvus (\(Self.explain(error)))")
        }
        guard status == 200 else {
            throw StoreError(store: store, "\(operation) answered HTTP \(status): \(String(buffer: bytes).prefix(300))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any] else {
            throw StoreError(store: store, "\(operation) answered something that is not JSON: \(String(buffer: bytes).prefix(300))")
        }
        let code = (object["code"] as? NSNumber)?.intValue ?? -1
        let message = object["message"] as? String ?? ""
        guard code == 200 || allowCodes.contains(code) else {
            throw StoreError(store: store, "\(operation) refused (Milvus code \(code)): \(message)")
        }
        return Answer(code: code, message: message, data: object["data"])
    }

    static func explain(_ error: Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("deadlineExceeded") || text.contains("connectTimeout") { return "timed out" }
        return text
    }

    /// A vector field of an answer's row.
    static func floats(_ value: Any?) -> [Float]? {
        (value as? [Any]).map { $0.compactMap { ($0 as? NSNumber)?.floatValue } }
    }

    package static func int64(_ value: Any) -> Int64? {
        if let s = value as? String { return Int64(s) }
        if let n = value as? NSNumber { return n.int64Value }
        return nil
    }

    /// A Milvus string literal: "text" with quotes and backslashes escaped.
    public static func literal(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A Milvus expression list of strings: ["a","b"] (hashes are hex, but quote-escape anyway).
    package static func list(_ strings: [String]) -> String {
        "[" + strings.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "]"
    }
}
