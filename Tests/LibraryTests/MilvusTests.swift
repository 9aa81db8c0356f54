// Milvus as the vector store, against a real server: scripts/milvus_server.py runs PyPI
// milvus==2.3.5 from .venv-milvus/ (made by `make setup-test`) on free loopback ports with a temporary
// data folder, once for the suite. Without that server the tests fail with the reason, unless
// LOOKALIKE_SKIP_MILVUS=1 (then they are skipped, saying so).
import AsyncHTTPClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LookalikeEngine
import NIOCore
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
import LookalikeVerification
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

/// The suite's Milvus server, started on first use and stopped when the test process exits.
final class MilvusTestServer: Sendable {
    let port: Int
    /// The Milvus process itself (killed by the mid-run test).
    let serverPid: Int32
    let process: Process
    let stdin: Pipe

    static let skipRequested = ProcessInfo.processInfo.environment["LOOKALIKE_SKIP_MILVUS"] == "1"
    static let shared: Result<MilvusTestServer, Error> = Result {
        let server = try MilvusTestServer(data: try Fixture.tempDir("milvus-data"))
        // Closing the helper's stdin stops the server, also when this process dies.
        atexit {
            if case .success(let server) = MilvusTestServer.shared { server.stop() }
        }
        return server
    }

    /// Starts a server with its data in `data` (port 0: a free one).
    init(data: URL, port: Int = 0) throws {
        let python = Fixture.packageRoot.appendingPathComponent(".venv-milvus/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw CatalogueError("Milvus tests: \(python.path) is missing: run `make setup-test` (it installs milvus==2.3.5 there), or set LOOKALIKE_SKIP_MILVUS=1 to skip them")
        }
        let process = Process()
        process.executableURL = python
        process.arguments = [Fixture.packageRoot.appendingPathComponent("scripts/milvus_server.py").path,
                             "--data", data.path, "--port", String(port)]
        let out = Pipe(), input = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardInput = input
        process.standardError = err
        try process.run()
        // The helper prints one READY line once /healthz answers (or exits with the reason).
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("READY "),
              let json = try? JSONSerialization.jsonObject(with: Data(text.dropFirst(6).utf8)) as? [String: Any],
              let port = (json["port"] as? NSNumber)?.intValue, let pid = (json["pid"] as? NSNumber)?.int32Value else {
            process.terminate()
            let reason = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw CatalogueError("Milvus tests: the server did not start: \(reason.isEmpty ? text : reason) (LOOKALIKE_SKIP_MILVUS=1 skips these tests)")
        }
        self.port = port
        self.serverPid = pid
        self.process = process
        self.stdin = input
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// A fresh collection name per test.
    func address(_ name: String = #function) -> MilvusAddress {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        return MilvusAddress(host: "127.0.0.1", port: port, collection: "t_\(safe)_\(UUID().uuidString.prefix(8).filter(\.isLetter))")
    }
}

/// Whether the Milvus tests run: always, unless LOOKALIKE_SKIP_MILVUS=1 asks to skip them when the
/// server cannot start (then they are reported as skipped, never as passed).
let milvusTestsRun: Bool = {
    if case .failure = MilvusTestServer.shared, MilvusTestServer.skipRequested { return false }
    return true
}()

@Suite(.serialized, .enabled(if: milvusTestsRun, "the Milvus server did not start and LOOKALIKE_SKIP_MILVUS=1 asks to skip"))
struct MilvusTests {
    /// The running server; a server that did not start fails the test with the reason.
    func server() throws -> MilvusTestServer {
        try MilvusTestServer.shared.get()
    }

    /// A library of `classes` indexed locally.
    func library(_ dir: URL, classes: [String] = Fixture.classes, name: String = "lib") throws -> Catalogue {
        let folder = dir.appendingPathComponent("\(name)-photos")
        try Fixture.copySamples(to: folder, classes: classes)
        let catalogue = try Catalogue(path: dir.appendingPathComponent("\(name).db").path)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])
        return catalogue
    }

    func count(_ store: MilvusStore) async throws -> Int {
        try await store.query(filter: "id > 0", fields: ["hash"]).count
    }

    @Test func indexedSamplesSearchLikeTheLocalExactTop10() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir)
        let embedder = try Fixture.embedder()
        let store = MilvusStore(address: server.address())
        let summary = try await MilvusSync(catalogue: catalogue, store: store, model: embedder.model).push(prune: false)
        let images = try catalogue.vectorCount(model: embedder.model.id)
        #expect(summary.inserted == images && summary.sent == images)
        #expect(try await count(store) == images)
        let collection = try await store.describe()
        #expect(collection?.metric == "IP" && collection?.dimension == 1280)

        let service = try SearchService(catalogue: catalogue)
        let all = try catalogue.allSummaries()
        for query in try FileManager.default.contentsOfDirectory(atPath: Fixture.queries.path).sorted() {
            let path = Fixture.queries.appendingPathComponent(query).path
            let vector = try await embedder.embed(path: path).1.vector
            let local = try await service.rank(vector: vector, request: SearchRequest(k: 10, reranking: .none))
            let remote = try await store.search(vector: vector, k: 10)
            #expect(remote.map(\.path) == local.map(\.path), "top-10 of \(query)")
            for (r, l) in zip(remote, local) {
                #expect(abs(r.score - l.score) < 1e-4)
                #expect(r.label == l.label && r.tags == all[l.id]?.tags)
            }
        }
    }

    @Test func evaluationAgainstTheStoreEqualsTheLocalPlainEvaluation() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir)
        let embedder = try Fixture.embedder()
        let store = MilvusStore(address: server.address())
        _ = try await MilvusSync(catalogue: catalogue, store: store, model: embedder.model).push(prune: false)
        var options = EvaluationOptions()
        options.k = 5
        let local = try await Evaluator.run(library: try LiveLibrary(catalogue: catalogue), options: options)
        let remote = try await StoreEvaluator.run(store: store, options: options, model: embedder.model)
        #expect(remote.queries == local.queries && remote.images == local.images && remote.queries > 10)
        #expect(abs(remote.precision_at_k - local.precision_at_k) < 1e-9 && abs(remote.map - local.map) < 1e-9,
                "store P@5 \(remote.precision_at_k) mAP \(remote.map), local \(local.precision_at_k) / \(local.map)")
        #expect(remote.method.hasPrefix("milvus") && remote.reranking == "none")
        // The same labels per query, found from the collection's rows alone.
        #expect(Set(remote.per_query.map { "\($0.label) \(URL(fileURLWithPath: $0.path).lastPathComponent)" })
                == Set(local.per_query.map { "\($0.label) \(URL(fileURLWithPath: $0.path).lastPathComponent)" }))
        // Query expansion through the store ranks as the local query expansion does.
        options.reranking = Reranking(expansion: 10)
        let localQE = try await Evaluator.run(library: try LiveLibrary(catalogue: catalogue), options: options)
        let remoteQE = try await StoreEvaluator.run(store: store, options: options, model: embedder.model)
        #expect(abs(remoteQE.precision_at_k - localQE.precision_at_k) < 1e-9 && abs(remoteQE.map - localQE.map) < 1e-9,
                "store qe:10 P@5 \(remoteQE.precision_at_k) mAP \(remoteQE.map), local \(localQE.precision_at_k) / \(localQE.map)")
        #expect(remoteQE.reranking == "qe:10" && localQE.reranking == "qe:10")
        // A collection of another model is refused before anything is measured.
        let other = ModelInfo(id: "other-model", checksum: "0", dimension: 1280)
        await #expect(throws: StoreError.self) { _ = try await StoreEvaluator.run(store: store, options: options, model: other) }
    }

    /// The re-ranking companion (`prepare-rerank`): every library image's top-10 and every
    /// upload's under the default re-ranking (augmentation, expansion, diffusion) equal the local
    /// library's, so does the evaluation; a push that changes the collection retires it until it is
    /// prepared again.
    @Test func reRankingOverTheStoreEqualsTheLocalLibrary() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir)
        let embedder = try Fixture.embedder()
        let address = server.address()
        let store = MilvusStore(address: address)
        _ = try await MilvusSync(catalogue: catalogue, store: store, model: embedder.model).push(prune: false)
        let images = try catalogue.vectorCount(model: embedder.model.id)
        let summary = try await StoreReranking.prepare(library: address, options: .libraryDefault)
        #expect(summary.images == images && summary.reranking == "dba:15+diff:30" && summary.notes.isEmpty)
        #expect(try await MilvusStore(address: StoreReranking.companionAddress(of: address)).count() == images)

        let remote = try await StoreLibrary.open(address, makeEmbedder: { _ in try Fixture.embedder() })
        let service = try SearchService(catalogue: catalogue)
        // A store answers without spatial verification (it reads no local features yet): the local
        // library's is turned off to compare the rankings.
        var request = SearchRequest(k: 10, reranking: .libraryDefault)
        request.verify = 0
        var sources: [QuerySource] = try catalogue.allSummaries().values.map { .path($0.path) }
        sources += try FileManager.default.contentsOfDirectory(atPath: Fixture.queries.path).sorted()
            .map { .file(Fixture.queries.appendingPathComponent($0).path) }
        for source in sources {
            let local = try await service.search(source, request)
            let answer = try await remote.search(source, request)
            #expect(answer.results.map(\.path) == local.results.map(\.path) && answer.results.count == 10, "\(source)")
            #expect(answer.reranking == local.reranking, "\(source): \(answer.reranking) / \(local.reranking)")
            for (r, l) in zip(answer.results, local.results) { #expect(abs(r.score - l.score) < 1e-4) }
        }
        #expect(sources.count > images)

        var options = EvaluationOptions()
        options.k = 5
        options.reranking = .libraryDefault
        let localEval = try await Evaluator.run(library: try LiveLibrary(catalogue: catalogue), options: options)
        let remoteEval = try await StoreEvaluator.run(store: store, options: options, model: embedder.model)
        #expect(remoteEval.reranking == "dba:15+qe:10+diff:30" && localEval.reranking == remoteEval.reranking)
        #expect(abs(remoteEval.precision_at_k - localEval.precision_at_k) < 1e-9 && abs(remoteEval.map - localEval.map) < 1e-9,
                "store P@5 \(remoteEval.precision_at_k) mAP \(remoteEval.map), local \(localEval.precision_at_k) / \(localEval.map)")

        // Another worker pushes one more image: the companion no longer covers the collection, so
        // answers fall back to query expansion (and say so) until it is prepared again.
        let other = try library(dir, classes: ["pizza"], name: "other")
        let extra = dir.appendingPathComponent("extra")
        try FileManager.default.createDirectory(at: extra, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixture.queries.appendingPathComponent("pizza_0010.jpg"),
                                         to: extra.appendingPathComponent("pizza_0010.jpg"))
        _ = try Indexer(catalogue: other, embedder: Fixture.embedder()).run(roots: [extra.path])
        _ = try await MilvusSync(catalogue: other, store: store, model: embedder.model).push(prune: false)
        remote.recheckReranking()
        let query = QuerySource.file(Fixture.queries.appendingPathComponent("dalmatian_0010.jpg").path)
        #expect(try await remote.search(query, request).reranking == "qe:10")
        _ = try await StoreReranking.prepare(library: address, options: .libraryDefault)
        remote.recheckReranking()
        #expect(try await remote.search(query, request).reranking == "dba:15+qe:10")

        // As many rows, other images (one pruned, one pushed): the row count cannot tell, the
        // content key does: the companion is retired, and the answer says why.
        let rowsBefore = try await store.count()
        let gone = try #require(try catalogue.allSummaries().values.first { $0.path.hasSuffix("sunflower/image_0001.jpg") })
        let goneHash = try #require(try catalogue.image(id: gone.imageId)?.contentHash)
        try await store.delete(hashes: [goneHash])
        let third = try library(dir, classes: ["butterfly"], name: "third")
        let another = dir.appendingPathComponent("another")
        try FileManager.default.createDirectory(at: another, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixture.queries.appendingPathComponent("butterfly_0010.jpg"),
                                         to: another.appendingPathComponent("butterfly_0010.jpg"))
        _ = try Indexer(catalogue: third, embedder: Fixture.embedder()).run(roots: [another.path])
        _ = try await MilvusSync(catalogue: third, store: store, model: embedder.model).push(prune: false)
        #expect(try await store.count() == rowsBefore)
        remote.recheckReranking()
        let retired = try await remote.search(query, request)
        #expect(retired.reranking == "qe:10" && retired.notes.contains { $0.hasPrefix("dba:15 not applied: the store has no current re-ranking companion") },
                "\(retired.reranking) \(retired.notes)")
    }

    @Test func rerunAddsNothingAndAnInterruptedPushResumesWithoutDuplicates() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir, classes: ["pizza", "dalmatian"])
        let model = try Fixture.embedder().model
        let store = MilvusStore(address: server.address())
        try await store.prepare(model: model)
        // A worker killed after Milvus acknowledged two inserts but before it marked them sent.
        let ids = try catalogue.unsentImageIds(store: store.address.description, model: model.id)
        try await store.insert(try catalogue.remoteEntities(imageIds: Array(ids.prefix(2)), model: model.id))
        try await Task.sleep(nanoseconds: 3_000_000_000)  // past Milvus' staleness bound
        let sync = MilvusSync(catalogue: catalogue, store: store, model: model, batchSize: 5)
        let first = try await sync.push(prune: false)
        #expect(first.alreadyThere == 2 && first.inserted == ids.count - 2)
        let again = try await sync.push(prune: false)
        #expect(again.inserted == 0 && again.alreadyThere == 0 && again.sent == ids.count)
        #expect(try await count(store) == ids.count)
        let rows = try await store.ids(forHashes: try catalogue.remoteEntities(imageIds: ids, model: model.id).map(\.contentHash))
        #expect(rows.count == ids.count && rows.values.allSatisfy { $0.count == 1 })
    }

    @Test func pruneDeletesImagesWhoseLastPathWent() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["pizza", "sunflower"])
        // The same bytes under a second path: the image stays while one path is left.
        let twin = folder.appendingPathComponent("pizza/twin.jpg")
        try FileManager.default.copyItem(at: folder.appendingPathComponent("pizza/image_0001.jpg"), to: twin)
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let indexer = Indexer(catalogue: catalogue, embedder: try Fixture.embedder())
        _ = try indexer.run(roots: [folder.path])
        let model = try Fixture.embedder().model
        let store = MilvusStore(address: server.address())
        let sync = MilvusSync(catalogue: catalogue, store: store, model: model)
        let before = try await sync.push(prune: true).sent

        try FileManager.default.removeItem(at: twin)  // one of two paths: nothing to delete
        _ = try indexer.run(roots: [folder.path], prune: true)
        #expect(try await sync.push(prune: true).deleted == 0)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("sunflower"))
        _ = try indexer.run(roots: [folder.path], prune: true)
        let pruned = try await sync.push(prune: true)
        let sunflowers = before - (try catalogue.vectorCount(model: model.id))
        #expect(sunflowers > 0 && pruned.deleted == sunflowers)
        #expect(try await count(store) == before - sunflowers)
        let labels = Set(try await store.query(filter: "id > 0", fields: ["label"]).compactMap { $0["label"] as? String })
        #expect(labels == ["pizza"])
    }

    @Test func twoWorkersOnDisjointFoldersDoNotDuplicate() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let a = try library(dir, classes: ["pizza", "dalmatian", "butterfly"], name: "a")
        let b = try library(dir, classes: ["sunflower", "airplanes", "Motorbikes"], name: "b")
        let model = try Fixture.embedder().model
        let address = server.address()
        // Each worker has its own client and catalogue; both push at once into one collection.
        async let first = MilvusSync(catalogue: a, store: MilvusStore(address: address), model: model, batchSize: 4).push(prune: false)
        async let second = MilvusSync(catalogue: b, store: MilvusStore(address: address), model: model, batchSize: 4).push(prune: false)
        let (sa, sb) = try await (first, second)
        let total = try a.vectorCount(model: model.id) + b.vectorCount(model: model.id)
        #expect(sa.inserted + sb.inserted == total)
        let store = MilvusStore(address: address)
        #expect(try await count(store) == total)
        let hashes = try await store.query(filter: "id > 0", fields: ["hash"]).compactMap { $0["hash"] as? String }
        #expect(Set(hashes).count == hashes.count)
    }

    @Test func unreachableStoreGivesAClearErrorAndTheRerunCompletes() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir, classes: ["pizza"])
        let model = try Fixture.embedder().model
        let good = server.address()
        // The same collection on a port where nothing listens (a stopped Milvus).
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let deadPort = Int(UInt16(bigEndian: addr.sin_port))
        close(listener)
        let dead = MilvusAddress(host: "127.0.0.1", port: deadPort, collection: good.collection)
        let started = Date()
        do {
            _ = try await MilvusSync(catalogue: catalogue, store: MilvusStore(address: dead), model: model).push(prune: false)
            Issue.record("a push to a stopped store succeeded")
        } catch let error as StoreError {
            #expect(error.description.contains(dead.description) && error.description.contains("cannot reach Milvus"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 10, "a stopped Milvus must fail fast")
        let summary = try await MilvusSync(catalogue: catalogue, store: MilvusStore(address: good), model: model).push(prune: false)
        #expect(summary.inserted == (try catalogue.vectorCount(model: model.id)))
    }

    @Test func milvusKilledMidRunGivesAClearErrorAndTheRerunCompletes() async throws {
        _ = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir, classes: ["pizza", "dalmatian", "sunflower"])
        let model = try Fixture.embedder().model
        // A server of its own, killed (SIGKILL) once the first batch is in, then restarted on
        // the same data (on another port: the old one lingers in TIME_WAIT; the catalogue's record
        // is per address, so the rerun looks every image up by hash and finds the first batch).
        let data = dir.appendingPathComponent("milvus")
        let doomed = try MilvusTestServer(data: data)
        let address = MilvusAddress(host: "127.0.0.1", port: doomed.port, collection: "midrun")
        let sync = MilvusSync(catalogue: catalogue, store: MilvusStore(address: address), model: model, batchSize: 3)
        let started = Date()
        do {
            _ = try await sync.push(prune: false) { done, _ in
                if done == 3 { kill(doomed.serverPid, SIGKILL) }
            }
            Issue.record("the push went on after Milvus was killed")
        } catch let error as StoreError {
            #expect(error.description.contains(address.description) && error.description.contains("cannot reach Milvus"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 20, "a stopped Milvus must fail fast")
        doomed.stop()
        // Two inserts are in flight at once, so the batch after the first may have been
        // acknowledged (and marked) before the kill, or inserted without its answer arriving.
        let sentBefore = try catalogue.sentCount(store: address.description)
        #expect(sentBefore == 3 || sentBefore == 6, "\(sentBefore) marked sent before the kill")
        let revived = try MilvusTestServer(data: data)
        defer { revived.stop() }
        let again = MilvusAddress(host: "127.0.0.1", port: revived.port, collection: "midrun")
        let summary = try await MilvusSync(catalogue: catalogue, store: MilvusStore(address: again), model: model).push(prune: false)
        let images = try catalogue.vectorCount(model: model.id)
        // What was marked is found again, plus at most the unanswered batch; nothing is sent twice.
        #expect(summary.sent == images && summary.alreadyThere >= sentBefore && summary.alreadyThere <= sentBefore + 3)
        #expect(summary.inserted + summary.alreadyThere == images)
        let store = MilvusStore(address: again)
        let hashes = try await store.query(filter: "id > 0", fields: ["hash"]).compactMap { $0["hash"] as? String }
        #expect(hashes.count == images && Set(hashes).count == images)
    }

    @Test func aCollectionOfAnotherModelIsRefused() async throws {
        let server = try server()
        let model = try Fixture.embedder().model
        let address = server.address()
        let other = ModelInfo(id: model.id, checksum: String(repeating: "0", count: 64), dimension: 512)
        try await MilvusStore(address: address).prepare(model: other)
        do {
            try await MilvusStore(address: address).prepare(model: model)
            Issue.record("a collection of another model was accepted")
        } catch let error as StoreError {
            #expect(error.description.contains(address.description) && error.description.contains("another model"), "\(error)")
        }
    }

    @Test func commandLineIndexAndSearchWithStore() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["pizza", "dalmatian", "sunflower"])
        let db = dir.appendingPathComponent("lib.db").path
        let store = server.address().description
        let first = try lookalike(["index", folder.path, "--db", db, "--store", store])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("store \(store): inserted "), "\(first.stdout)")
        let rerun = try lookalike(["index", folder.path, "--db", db, "--store", store])
        #expect(rerun.stdout.contains("inserted 0, already there 0"), "\(rerun.stdout)")
        let query = Fixture.queries.appendingPathComponent("pizza_0010.jpg").path
        let service = try SearchService(catalogue: Catalogue(path: db, mustExist: true))
        struct Answer: Decodable { struct Hit: Decodable { let path: String }; let results: [Hit]; let reranking: String }
        // Plain, and with query expansion (before `prepare-rerank`, augmentation has no augmented
        // vectors to rank: the answer says only qe was applied).
        // Verification off on both sides to compare the rankings (a store verifies from files, the
        // local library by its stored keypoints: below).
        for (option, reranking) in [("none", Reranking.none), ("default", Reranking(expansion: 10))] {
            let remote = try lookalike(["search", query, "--store", store, "-k", "10", "--json", "--rerank", option, "--verify", "0"])
            var unverified = SearchRequest(k: 10, reranking: reranking)
            unverified.verify = 0
            let local = try await service.search(.file(query), unverified)
            let r = try JSONDecoder().decode(Answer.self, from: Data(remote.stdout.utf8))
            #expect(r.results.map(\.path) == local.results.map(\.path) && r.results.count == 10, "--rerank \(option)")
            #expect(r.reranking == reranking.description)
        }
        // After `prepare-rerank`, the library's default re-ranking applies over the store as locally:
        // an upload gets augmentation and expansion, a library image diffusion too.
        let prepared = try lookalike(["prepare-rerank", "--store", store])
        #expect(prepared.status == 0 && prepared.stdout.contains("dba:15+diff:30 prepared for 18 images"), "\(prepared.stdout) \(prepared.stderr)")
        let libraryImage = folder.appendingPathComponent("dalmatian/image_0002.jpg").path
        for (arguments, source, applied) in [([query], QuerySource.file(query), "dba:15+qe:10"),
                                             (["--path", libraryImage], QuerySource.path(libraryImage), "dba:15+qe:10+diff:30")] {
            let remote = try lookalike(["search"] + arguments + ["--store", store, "-k", "10", "--json"]
                                       + (arguments == [query] ? ["--verify", "0"] : []))
            var unverified = SearchRequest(k: 10, reranking: .libraryDefault)
            unverified.verify = 0
            let local = try await service.search(source, unverified)
            let r = try JSONDecoder().decode(Answer.self, from: Data(remote.stdout.utf8))
            #expect(r.results.map(\.path) == local.results.map(\.path) && r.results.count == 10, "default re-ranking, \(arguments)")
            #expect(r.reranking == applied && local.reranking == applied, "\(r.reranking) / \(local.reranking)")
        }
        // An edited copy of a store image, searched with no options, is verified from the files the
        // rows name (readable here) and comes back first, as from the local library.
        struct Verified: Decodable { struct Hit: Decodable { let path: String; let inliers: Int? }; let results: [Hit]; let reranking: String }
        let tilt = try #require(Transformation.standard.first { $0.name == "rotate +15" })
        let copy = dir.appendingPathComponent("tilted copy.jpg")
        try Data(try tilt.apply(toFile: libraryImage)).write(to: copy)
        let verified = try lookalike(["search", copy.path, "--store", store, "-k", "5", "--json"])
        let v = try JSONDecoder().decode(Verified.self, from: Data(verified.stdout.utf8))
        #expect(v.results.first?.path == libraryImage && (v.results.first?.inliers ?? 0) >= SpatialVerifier.minimumInliers,
                "\(verified.stdout) \(verified.stderr)")
        #expect(v.reranking.hasSuffix("+verify:\(SearchRequest.automaticFromFiles)"), "\(v.reranking)")
        #expect(v.results.dropFirst().allSatisfy { $0.inliers == nil })
        // `info --store` describes the collection: its images, model and re-ranking companion.
        struct StoreInfo: Decodable { let images: Int; let model: String?; let reranking: String?; let rerankingCurrent: Bool }
        let info = try lookalike(["info", "--store", store, "--json"])
        #expect(info.status == 0, "\(info.stderr)")
        let described = try JSONDecoder().decode(StoreInfo.self, from: Data(info.stdout.utf8))
        #expect(described.images == 18 && described.model == "efficientnet-lite0/whole+rmac", "\(info.stdout)")
        #expect(described.rerankingCurrent && described.reranking?.hasPrefix("dba:15+diff:30") == true, "\(info.stdout)")
        let bad = try lookalike(["search", query, "--store", "milvus://127.0.0.1:1/nothing"])
        #expect(bad.status != 0 && bad.stderr.contains("milvus://127.0.0.1:1/nothing"), "\(bad.stderr)")
    }

    /// `serve --store`: the API answers from Milvus as the local library does (top-10 of uploads
    /// plain and with query expansion, library queries by key, random, pages by label, details,
    /// thumbnails from the rows' paths), and says why what needs a local library is refused.
    @Test func serveAnswersFromTheStoreLikeTheLocalLibrary() async throws {
        let server = try server()
        let dir = try Fixture.tempDir()
        let catalogue = try library(dir)
        let embedder = try Fixture.embedder()
        let address = server.address()
        _ = try await MilvusSync(catalogue: catalogue, store: MilvusStore(address: address), model: embedder.model).push(prune: false)
        let images = try catalogue.vectorCount(model: embedder.model.id)

        let process = Process()
        process.executableURL = try Fixture.executable()
        process.arguments = ["serve", "--store", address.description, "--port", "0",
                             "--thumbnail-cache", dir.appendingPathComponent("thumbs").path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        // "lookalike: serving N images from milvus://... at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        var printed = ""
        while !printed.contains("(Ctrl-C"), process.isRunning {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            printed += String(decoding: data, as: UTF8.self)
        }
        #expect(printed.contains("serving \(images) images from \(address)"), "\(printed)")
        let base = try #require(printed.split(separator: " ").first { $0.hasPrefix("http://") }.map { String($0.dropLast()) })

        func get(_ path: String, body: [UInt8]? = nil) async throws -> (status: UInt, type: String, bytes: [UInt8]) {
            var request = HTTPClientRequest(url: base + path)
            if let body {
                request.method = .POST
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            let bytes = try await response.body.collect(upTo: 16 << 20)
            return (response.status.code, response.headers.first(name: "Content-Type") ?? "", Array(bytes.readableBytesView))
        }
        struct Answer: Decodable {
            struct Query: Decodable { let id: Int64? }
            struct Hit: Decodable { let id: Int64; let path: String; let score: Float; let thumbnail: String }
            let query: Query; let results: [Hit]; let reranking: String; let method: String
        }
        func answer(_ path: String, body: [UInt8]? = nil) async throws -> Answer {
            let (status, _, bytes) = try await get(path, body: body)
            #expect(status == 200, "\(path): \(String(decoding: bytes, as: UTF8.self))")
            return try JSONDecoder().decode(Answer.self, from: Data(bytes))
        }
        // Paths are shown by their last two components over a store (no library folders known).
        func shown(_ path: String) -> String { path.split(separator: "/").suffix(2).joined(separator: "/") }

        let service = try SearchService(catalogue: catalogue)
        let query = Fixture.queries.appendingPathComponent("dalmatian_0010.jpg").path
        let upload = try [UInt8](Data(contentsOf: URL(fileURLWithPath: query)))
        // The rankings compared with verification off on both sides.
        for (option, reranking) in [("none", Reranking.none), ("qe:10", Reranking(expansion: 10))] {
            let remote = try await answer("/api/search?k=10&rerank=\(option)&verify=0", body: upload)
            var unverified = SearchRequest(k: 10, reranking: reranking)
            unverified.verify = 0
            let local = try await service.search(.file(query), unverified)
            #expect(remote.results.map(\.path) == local.results.map { shown($0.path) }, "rerank \(option)")
            for (r, l) in zip(remote.results, local.results) { #expect(abs(r.score - l.score) < 1e-4, "\(option): \(r.score) \(l.score) \(l.cosine) \(local.reranking)") }
            #expect(remote.reranking == reranking.description && remote.method == "milvus")
        }
        // The server's default: query expansion applied, augmentation not (no companion yet), and
        // the upload verified against the files its best candidates' rows name.
        #expect(try await answer("/api/search?k=10", body: upload).reranking == "qe:10+verify:\(SearchRequest.automaticFromFiles)")

        // A library image by its key: the same neighbours as the local search of the same image.
        let random = try await answer("/api/random?k=5&rerank=none")
        let key = try #require(random.query.id)
        let byKey = try await answer("/api/search?id=\(key)&k=5&rerank=none")
        #expect(byKey.results.map(\.id) == random.results.map(\.id) && byKey.results.count == 5)
        #expect(!byKey.results.contains { $0.id == key })
        // The page names the method the stats list (the store's own index).
        #expect(try await answer("/api/search?id=\(key)&k=5&rerank=none&method=milvus").results.map(\.id) == byKey.results.map(\.id))
        #expect(try await get("/api/search?id=\(key)&method=hnsw").status == 400)
        var localId: Int64?
        for id in try catalogue.allSummaries().keys
        where try catalogue.details(imageId: id).map({ StoreLibrary.key(hash: $0.image.contentHash) }) == key {
            localId = id
        }
        let localById = try await service.search(.id(try #require(localId)), SearchRequest(k: 5, reranking: .none))
        #expect(byKey.results.map(\.path) == localById.results.map { shown($0.path) })

        let thumbnail = try await get(random.results[0].thumbnail)
        #expect(thumbnail.status == 200 && thumbnail.type == "image/jpeg" && thumbnail.bytes.prefix(2) == [0xFF, 0xD8])
        #expect(try await get("/api/images/12345/thumbnail").status == 404)

        struct Page: Decodable { let total: Int; let items: [Item]; struct Item: Decodable { let label: String } }
        let (_, _, pageBytes) = try await get("/api/images?label=pizza&per_page=4&page=2")
        let page = try JSONDecoder().decode(Page.self, from: Data(pageBytes))
        #expect(page.total == 6 && page.items.count == 2 && page.items.allSatisfy { $0.label == "pizza" })
        struct Details: Decodable { let id: Int64; let contentHash: String; let label: String
            enum CodingKeys: String, CodingKey { case id, label, contentHash = "content_hash" } }
        let (_, _, detailBytes) = try await get("/api/images/\(key)")
        let details = try JSONDecoder().decode(Details.self, from: Data(detailBytes))
        #expect(details.id == key && StoreLibrary.key(hash: details.contentHash) == key)
        struct Stats: Decodable { let images: Int; let store: String? }
        let stats = try JSONDecoder().decode(Stats.self, from: Data(try await get("/api/stats").bytes))
        #expect(stats.images == images && stats.store == address.description)
        let duplicates = try await get("/api/duplicates")
        #expect(duplicates.status == 501 && String(decoding: duplicates.bytes, as: UTF8.self).contains("local library"))
    }

    struct Run { let status: Int32; let stdout: String; let stderr: String }

    func lookalike(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = try Fixture.executable()
        process.arguments = arguments
        process.environment = Fixture.environment()
        process.currentDirectoryURL = Fixture.packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// The insert body's number format, without a server: 7 decimals, no trailing zeros, and
/// every value within 5e-8 of the Float it writes.
@Suite struct MilvusNumberFormatTests {
    @Test func vectorComponentsAreWrittenWithSevenDecimals() throws {
        func text(_ x: Float) -> String {
            var out: [UInt8] = []
            MilvusStore.appendFixed7(x, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        let cases: [(Float, String)] = [(0, "0"), (1, "1"), (-1, "-1"), (0.5, "0.5"), (-0.25, "-0.25"),
                                        (0.0123456789, "0.0123457"), (-3.4e-9, "0"), (1e-7, "0.0000001"),
                                        (-0.00000049, "-0.0000005"), (0.9999999, "0.9999999"), (2.5, "2.5")]
        for (x, expected) in cases { #expect(text(x) == expected, "\(x)") }
        var rng = SplitMix64(seed: 5)
        for _ in 0..<10_000 {
            let x = Float.random(in: -1...1, using: &rng) * (Bool.random(using: &rng) ? 1 : 1e-3)
            let written = text(x)
            let back = try #require(Double(written), "\(written)")
            #expect(abs(back - Double(x)) <= 5.000001e-8, "\(x) -> \(written)")
            #expect(!written.contains("e") && (!written.contains(".") || !written.hasSuffix("0")))
        }
    }
}
