// Opening and following a library: the snapshot beside the catalogue (used in place, replayed from
// the journal, rebuilt when missing, corrupt, of other vectors or older than the journal), a live
// library that sees another writer's additions and deletions, concurrent searches while it
// changes, the v1 -> v2 migration of an existing library, the async engine API, and the --prune
// guard for vanished folders.
import Foundation
import LookalikeEngine
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

@Suite(.serialized) struct SnapshotAndLiveTests {
    /// A library of the sample photos of `classes`, indexed (which writes the snapshot).
    static func library(_ classes: [String] = Fixture.classes, name: String = #function) throws -> (URL, Catalogue, URL) {
        let dir = try Fixture.tempDir(name)
        let photos = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: photos, classes: classes)
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path])
        return (dir, catalogue, photos)
    }

    /// Answer lists from before they kept their scores: the reader refuses them (searches run
    /// live), `info` says so rather than "current", and `index` remakes them.
    @Test func answerListsWithoutScoresAreStaleAndRemade() async throws {
        let (_, catalogue, photos) = try Self.library(["pizza", "dalmatian"])
        let file = try #require(try DerivedFiles.status(catalogue: catalogue).first { $0.kind == "answer lists" })
        #expect(file.current && file.inputs["scores"] == "1")
        let url = LibrarySnapshot.folder(for: catalogue).appendingPathComponent(file.name)
        let contents = try IndexFile.read(url, catalogue: catalogue.identity)
        var fields = contents.header.fields
        fields["scores"] = nil
        let n = contents.header.count, length = AnswerLists.length
        let old = IndexFileHeader(dimension: 0, count: n, origin: FileOrigin(catalogue: catalogue.identity, counter: contents.header.catalogueCounter),
                                  model: contents.header.model, variant: contents.header.variant, payloadBytes: n * 8 + n * length * 4, fields: fields)
        let payload = Array(contents.payload.prefix(n * 8 + n * length * 4))
        try IndexFile.write(to: url, tag: contents.tag, header: old) { w in try w.append(array: payload) }
        let stale = try #require(try DerivedFiles.status(catalogue: catalogue).first { $0.kind == "answer lists" })
        #expect(!stale.current && (stale.reason ?? "").contains("older release"), "\(stale.reason ?? "")")
        let service = try SearchService(catalogue: catalogue)
        let id = try #require(service.library.store.liveIds.first)
        #expect(try await service.search(.id(id), SearchRequest(k: 5)).precomputed == false)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path])
        #expect(try DerivedFiles.status(catalogue: catalogue).first { $0.kind == "answer lists" }?.current == true)
    }

    @Test func snapshotIsWrittenByIndexAndUsedToOpen() throws {
        let (_, catalogue, _) = try Self.library()
        let url = LibrarySnapshot.url(for: catalogue)
        #expect(FileManager.default.fileExists(atPath: url.path))
        let live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "snapshot")
        #expect(live.count == 36)
        #expect(live.counter == (try catalogue.changeCounter()))
        // The journal the snapshot covers was pruned.
        #expect(try catalogue.journalLength() == 0)
        // Same answers as a library streamed from the catalogue.
        let (streamed, _) = try LibrarySnapshot.streamStore(catalogue: catalogue, model: live.model, precision: .float32, variant: EmbeddingVariant.raw)
        for id in streamed.liveIds.prefix(5) {
            let q = try #require(streamed.reconstruct(id))
            #expect(live.store.reconstruct(id) == q)
            let a = streamed.search(q, k: 5, metric: .cosine, parameters: SearchParameters())
            let b = live.store.search(q, k: 5, metric: .cosine, parameters: SearchParameters())
            #expect(a.first?.map(\.id) == b.first?.map(\.id))
        }
    }

    /// A writer's step that recomputes only re-ranking vectors (another re-ranking, or a new
    /// release's) keeps the raw snapshot usable: the journal is kept back to its counter.
    @Test func reRankingVectorsMadeAgainLeaveTheRawSnapshotUsable() throws {
        let (_, catalogue, _) = try Self.library(["pizza", "dalmatian"])
        let model = try #require(try catalogue.storedModel())
        let other = Reranking(augmentation: 5, expansion: 10, diffusion: 30)
        let step = try LibrarySnapshot.maintain(catalogue: catalogue, model: model, reranking: other)
        #expect(step.augmentation?.recomputed == 12 && step.removed.contains { $0.hasPrefix("dba:15") }, "\(step.removed)")
        let live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "snapshot", "\(live.opening.snapshotProblem ?? "")")
        // Every file is current (the local features, made by a job of their own, are not asked for here).
        #expect(try DerivedFiles.status(catalogue: catalogue).filter { $0.kind != "local features" }.allSatisfy(\.current))
    }

    @Test func badSnapshotsAreNeverTrusted() throws {
        let (_, catalogue, _) = try Self.library(["pizza", "dalmatian"])
        let url = LibrarySnapshot.url(for: catalogue)
        let good = try Data(contentsOf: url)
        let model = try #require(try catalogue.storedModel())
        // Corrupt: one flipped byte in the vectors.
        var bad = good
        bad[bad.count - 100] ^= 0x40
        try bad.write(to: url)
        var live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "catalogue")
        #expect(live.opening.snapshotProblem?.contains("checksum") == true)
        #expect(live.count == 12)
        // Truncated.
        try good.prefix(good.count / 2).write(to: url)
        live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "catalogue" && live.count == 12)
        // Written for another model.
        let store = live.store
        try store.write(to: url, tag: "exact", origin: FileOrigin(catalogue: catalogue.identity, counter: live.counter), model: "another-model", variant: EmbeddingVariant.raw)
        live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "catalogue")
        // Older than the journal reaches: counter 0 while the journal was pruned past it.
        try store.write(to: url, tag: "exact", origin: FileOrigin(catalogue: catalogue.identity, counter: 0), model: model.checksum, variant: EmbeddingVariant.raw)
        live = try LiveLibrary(catalogue: catalogue)
        #expect(live.opening.source == "catalogue")
        #expect(live.opening.snapshotProblem?.contains("older") == true)
        // The writer repairs it.
        let refresh = try LibrarySnapshot.refresh(catalogue: catalogue, model: model)
        #expect(refresh.action == "written")
        #expect(try LiveLibrary(catalogue: catalogue).opening.source == "snapshot")
    }

    @Test func liveLibraryFollowsAnotherWritersChanges() async throws {
        let (dir, catalogue, photos) = try Self.library(["pizza", "dalmatian"])
        let live = try LiveLibrary(catalogue: catalogue)
        let service = SearchService(library: live, resolver: QueryResolver(library: live) { _ in try Fixture.embedder() })
        #expect(live.count == 12)
        // Another process adds a class (its own catalogue connection, as `lookalike index` would).
        try Fixture.copySamples(to: photos, classes: ["sunflower"])
        let writer = try Catalogue(path: catalogue.path)
        _ = try Indexer(catalogue: writer, embedder: Fixture.embedder()).run(roots: [photos.path])
        let added = try #require(try live.refresh())
        #expect(added.added.count == 6 && added.removed.isEmpty)
        #expect(live.count == 18)
        let sunflower = photos.appendingPathComponent("sunflower/image_0001.jpg").path
        let results = try await service.search(path: sunflower, k: 3, metric: .cosine)
        #expect(results.map(\.label) == ["sunflower", "sunflower", "sunflower"])
        // ... then deletes it; pruning removes the images, and the live library drops them.
        try FileManager.default.removeItem(at: photos.appendingPathComponent("sunflower"))
        _ = try Indexer(catalogue: writer, embedder: Fixture.embedder()).run(roots: [photos.path], prune: true)
        let removed = try #require(try live.refresh())
        #expect(removed.removed.count == 6)
        #expect(live.count == 12)
        let query = try #require(try catalogue.imageId(path: photos.appendingPathComponent("pizza/image_0001.jpg").path))
        let after = try await service.search(imageId: query, k: 20, metric: .cosine)
        #expect(after.count == 11 && after.allSatisfy { $0.label != "sunflower" })
        // Nothing to do when nothing changed.
        #expect(try live.refresh() == nil)
        _ = dir
    }

    @Test func liveLibraryReopensWhenTheJournalWasPrunedPastIt() throws {
        let (_, catalogue, photos) = try Self.library(["pizza"])
        let live = try LiveLibrary(catalogue: catalogue)
        try Fixture.copySamples(to: photos, classes: ["butterfly", "airplanes"])
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path])
        // Force the writer to cover the changes with a new snapshot and prune the journal.
        let model = try #require(try catalogue.storedModel())
        try LibrarySnapshot.refresh(catalogue: catalogue, model: model, rewriteFraction: 0, minimumChanges: 0)
        #expect(try catalogue.changes(after: live.counter, model: model.id) == nil)
        _ = try live.refresh()
        #expect(live.count == 18)
        #expect(live.counter == (try catalogue.changeCounter()))
    }

    @Test func searchesRunConcurrentlyWhileTheLibraryChanges() async throws {
        let d = 64
        let store = VectorStore(dimension: d)
        let index = ExactIndex(store: store, descriptor: IndexDescriptor(method: "exact"))
        let base = Synthetic.unitVectors(4000, dimension: d, seed: 5)
        try store.add(ids: (0..<4000).map { Int64($0) }, vectors: base)
        let query = Array(base[0..<d])
        try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<8 {
                group.addTask {
                    var answered = 0
                    for _ in 0..<40 {
                        let r = try index.search(query, k: 5)
                        // Row 0 is never removed: it always comes first.
                        #expect(r.first?.id == 0 && r.count == 5)
                        answered += 1
                    }
                    return answered + t * 0
                }
            }
            group.addTask {
                for round in 0..<20 {
                    let extra = Synthetic.unitVectors(50, dimension: d, seed: 100 + UInt64(round))
                    let ids = (0..<50).map { Int64(10_000 + round * 50 + $0) }
                    try store.add(ids: ids, vectors: extra)
                    store.remove(ids: Set(ids.prefix(25)))
                }
                return 0
            }
            var total = 0
            for try await n in group { total += n }
            #expect(total == 320)
        }
        #expect(store.count == 4000 + 20 * 25)
    }

    @Test func version1LibraryMigratesInPlace() async throws {
        let dir = try Fixture.tempDir()
        let db = try Fixture.fixtureCopy("v1-library.db", into: dir)
        let catalogue = try Catalogue(path: db.path, mustExist: true)
        let info = try catalogue.info()
        #expect(info.images == 4 && info.files == 4)
        let model = try #require(try catalogue.storedModel())
        #expect(model.checksum == (try Fixture.embedder().model.checksum))
        let (ids, vectors) = try catalogue.loadVectors(model: model.id, dimension: model.dimension)
        #expect(ids.count == 4 && vectors.count == 4 * model.dimension)
        // The migrated vectors are the raw network vectors of those photos, made with the descriptor
        // of their day (the reference's centre crop), which the library keeps using.
        #expect(Descriptor(modelID: model.id) == .centreCrop)
        let pizza = try #require(try catalogue.imageId(path: "/tmp/v1src/pizza/image_0001.jpg"))
        let stored = try #require(try catalogue.vector(imageId: pizza))
        let fresh = try await Embedder(threads: 1, descriptor: .centreCrop).embed(path: Fixture.samples.appendingPathComponent("pizza/image_0001.jpg").path).1.vector
        #expect(zip(stored, fresh).map { abs($0 - $1) }.max() ?? 1 < 1e-5)
        // Search works, and the journal records changes from now on.
        let service = try SearchService(catalogue: catalogue)
        let results = try await service.search(imageId: pizza, k: 1, metric: .cosine)
        #expect(results.first?.label == "pizza")
        let before = try catalogue.changeCounter()
        try catalogue.remove(paths: ["/tmp/v1src/pizza/image_0001.jpg"])
        let changes = try #require(try catalogue.changes(after: before, model: model.id))
        #expect(changes.removed == [pizza])
    }

    @Test func asyncEmbeddingMatchesTheBlockingAPI() async throws {
        let embedder = try Fixture.embedder()
        let path = Fixture.queries.appendingPathComponent("pizza_0010.jpg").path
        let blocking = try { () throws -> [Float] in try embedder.embed(path: path).1.vector }()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // More concurrent requests than workers: they queue and all complete.
        let vectors = try await withThrowingTaskGroup(of: [Float].self) { group in
            for i in 0..<6 {
                group.addTask {
                    if i % 2 == 0 { return try await embedder.embed(path: path).1.vector }
                    return try await embedder.embed(data: bytes, name: "upload").1.vector
                }
            }
            var all: [[Float]] = []
            for try await v in group { all.append(v) }
            return all
        }
        #expect(vectors.count == 6 && vectors.allSatisfy { $0 == blocking })
        await #expect(throws: DecodeError.self) { _ = try await embedder.embed(data: Array("text".utf8), name: "notes.txt") }
    }

    @Test func pruneKeepsTheFilesOfAVanishedFolderUnlessForced() throws {
        let (dir, catalogue, photos) = try Self.library(["pizza", "dalmatian"])
        // The folder disappears (an unmounted drive): --prune keeps its images.
        let moved = dir.appendingPathComponent("elsewhere")
        try FileManager.default.moveItem(at: photos, to: moved)
        let kept = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path], prune: true)
        #expect(kept.removed == 0 && kept.protectedRoots.count == 1 && kept.missing == 12)
        #expect(try catalogue.info().images == 12)
        // An empty folder in its place: still kept.
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        let empty = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path], prune: true)
        #expect(empty.removed == 0 && empty.protectedRoots.first?.reason.contains("no images") == true)
        // With force, they go.
        let forced = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [photos.path], prune: true, force: true)
        #expect(forced.removed == 12)
        #expect(try catalogue.info().images == 0)
    }

    @Test func dedupeGroupsPlantedCopiesWithoutPairLists() throws {
        let d = 32, n = 9000
        var data = Synthetic.unitVectors(n, dimension: d, seed: 21)
        // Rows 10..14 are copies of row 0 with tiny noise; rows 8000 and 8001 of row 7000.
        for (copy, of) in [(10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (8000, 7000), (8001, 7000)] {
            var norm: Float = 0
            for i in 0..<d { data[copy * d + i] = data[of * d + i] + (i % 3 == 0 ? 0.003 : 0); norm += data[copy * d + i] * data[copy * d + i] }
            for i in 0..<d { data[copy * d + i] /= norm.squareRoot() }
        }
        let store = VectorStore(dimension: d)
        try store.add(ids: (0..<Int64(n)).map { $0 + 1 }, vectors: data)
        let (ids, groups) = Deduplicator.nearGroups(store: store, threshold: 0.001)
        let sets = Set(groups.map { Set($0.rows.map { ids[$0] }) })
        #expect(sets == [Set([1, 11, 12, 13, 14, 15]), Set([7001, 8001, 8002])])
        #expect(groups.allSatisfy { $0.worst >= 0 && $0.worst < 0.001 })
    }
}
