// Indexing: good and broken files, duplicates, content recognition, incremental reruns, pruning,
// the model check, and crash safety (kill -9 of an indexing process, then a rerun).
import Foundation
import GRDB
import LookalikeEngine
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

@Suite(.serialized) struct IndexingTests {
    @Test func indexesGoodFilesAndReportsBrokenOnes() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["dalmatian", "pizza"])
        let broken = folder.appendingPathComponent("broken")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        let jpeg = try Data(contentsOf: Fixture.samples.appendingPathComponent("pizza/image_0001.jpg"))
        try Data().write(to: broken.appendingPathComponent("empty.jpg"))
        try jpeg.prefix(jpeg.count / 3).write(to: broken.appendingPathComponent("truncated.jpg"))
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: broken.appendingPathComponent("garbage.png"))
        try Data("just some notes, not a picture\n".utf8).write(to: broken.appendingPathComponent("notes.jpg"))
        try Data("ignored: unknown extension and not an image".utf8).write(to: folder.appendingPathComponent("readme.txt"))
        // An image recognised by content despite its extension, and a duplicate under another path.
        try jpeg.write(to: folder.appendingPathComponent("pizza-photo.dat"))
        try jpeg.write(to: broken.appendingPathComponent("same-pizza.jpg"))

        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let summary = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])

        let failed = Dictionary(uniqueKeysWithValues: summary.failures.map { (URL(fileURLWithPath: $0.path).lastPathComponent, $0.reason) })
        #expect(Set(failed.keys) == ["empty.jpg", "truncated.jpg", "garbage.png", "notes.jpg"])
        for (_, reason) in failed { #expect(!reason.isEmpty) }
        #expect(summary.indexed == 14)       // 12 samples + .dat + duplicate path
        #expect(summary.embedded == 12)      // the two pizza copies share one embedding
        let info = try catalogue.info()
        #expect(info.images == 12)
        #expect(info.files == 14)
        #expect(info.failures == 4)
        let groups = try catalogue.exactDuplicates()
        #expect(groups.count == 1)
        #expect(groups.first?.count == 3)    // image_0001.jpg, pizza-photo.dat, same-pizza.jpg
        // Labels are the parent folder names.
        let summaries = try catalogue.allSummaries()
        #expect(Set(summaries.values.map(\.label)).isSuperset(of: ["dalmatian", "pizza"]))
    }

    @Test func rerunIsIncrementalAndPruneRemovesGoneFiles() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["sunflower", "airplanes"])
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let indexer = try Indexer(catalogue: catalogue, embedder: Fixture.embedder())
        let first = try indexer.run(roots: [folder.path])
        #expect(first.indexed == 12 && first.embedded == 12)

        let second = try indexer.run(roots: [folder.path])
        #expect(second.indexed == 0 && second.unchanged == 12 && second.embedded == 0 && second.updated == 0)

        // New mtime, same bytes: confirmed unchanged by the content hash, not re-embedded.
        let touched = folder.appendingPathComponent("sunflower/image_0001.jpg")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: touched.path)
        // Changed content: re-embedded.
        let changed = folder.appendingPathComponent("sunflower/image_0002.jpg")
        try Data(contentsOf: Fixture.samples.appendingPathComponent("pizza/image_0003.jpg")).write(to: changed)
        // Gone.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("airplanes/image_0001.jpg"))

        let third = try indexer.run(roots: [folder.path])
        #expect(third.updated == 1 && third.embedded == 1 && third.unchanged == 10 && third.missing == 1 && third.removed == 0)
        let changedId = try #require(try catalogue.imageId(path: changed.path))
        let pizzaVector = try #require(try catalogue.vector(imageId: changedId))
        let embedded = try Fixture.embedder().embed(path: Fixture.samples.appendingPathComponent("pizza/image_0003.jpg").path).1
        #expect(zip(pizzaVector, embedded.vector).map { abs($0 - $1) }.max() ?? 1 < 1e-5)

        let fourth = try indexer.run(roots: [folder.path], prune: true)
        #expect(fourth.removed == 1 && fourth.embedded == 0)
        let info = try catalogue.info()
        #expect(info.files == 11 && info.images == 11)

        // A file that turns into garbage is reported and leaves the library; the rest stays.
        let broken = folder.appendingPathComponent("airplanes/image_0002.jpg")
        try Data("overwritten by accident".utf8).write(to: broken)
        let fifth = try indexer.run(roots: [folder.path])
        #expect(fifth.failures.map { $0.path } == [broken.path] && fifth.unchanged == 10)
        #expect(try catalogue.imageId(path: broken.path) == nil)
        #expect(try catalogue.info().images == 10)
    }

    @Test func symlinkedFilesAreIndexedAndFolderLinksNotFollowed() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let target = Fixture.samples.appendingPathComponent("pizza/image_0001.jpg")
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("linked.jpg"), withDestinationURL: target)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("loop"), withDestinationURL: folder)
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let summary = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])
        #expect(summary.indexed == 1 && summary.failed == 0)
        #expect(try catalogue.imageId(path: folder.appendingPathComponent("linked.jpg").path) != nil)
    }

    @Test func libraryOfAnotherModelIsRefused() throws {
        let dir = try Fixture.tempDir()
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        try catalogue.adopt(model: ModelInfo(id: "other-net", checksum: "abc", dimension: 512))
        #expect(throws: CatalogueError.self) {
            _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [Fixture.samples.path])
        }
        #expect(try catalogue.info().images == 0)
    }

    @Test func killDuringIndexingThenRerunLeavesConsistentLibrary() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        let total = try Fixture.makeDistinctCopies(in: folder, copies: 4)
        let db = dir.appendingPathComponent("lib.db")
        // Kill at three different moments, each time after something has been committed.
        var killedWhileRunning = 0
        for round in 0..<3 {
            let process = try Fixture.launchIndex(folder: folder, db: db)
            let deadline = Date(timeIntervalSinceNow: 60)
            var lastCount = -1
            while process.isRunning && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
                if FileManager.default.fileExists(atPath: db.path),
                   let count = try? DatabaseQueue(path: db.path).read({ try ImageRecord.fetchCount($0) }) {
                    if count > lastCount && count >= (round + 1) * 10 { break }
                    lastCount = count
                }
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killedWhileRunning += 1
            }
            process.waitUntilExit()
        }
        #expect(killedWhileRunning >= 1)
        let catalogue = try Catalogue(path: db.path)
        let summary = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])
        #expect(summary.failed == 0)
        let info = try catalogue.info()
        #expect(info.files == total)
        #expect(info.images == total)
        let check = try DatabaseQueue(path: db.path).read { db -> (String?, Int, Int, Int, Int) in
            (try String.fetchOne(db, sql: "PRAGMA integrity_check"),
             try EmbeddingRecord.filter(EmbeddingRecord.Columns.variant == EmbeddingVariant.raw).fetchCount(db),
             try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").count,
             try ImageRecord.having(ImageRecord.files.isEmpty).fetchCount(db),
             try ImageRecord.fetchCount(db) - ImageRecord.joining(required: ImageRecord.embedding
                .filter(EmbeddingRecord.Columns.variant == EmbeddingVariant.raw)).fetchCount(db))
        }
        #expect(check.0 == "ok")
        #expect(check.1 == total)            // one raw embedding per image
        // ... and one re-ranking (augmented) vector per image, brought in step by the rerun.
        let augmented = DatabaseAugmentation.variant(neighbours: Reranking.libraryDefault.augmentation, alpha: Reranking.libraryDefault.alpha(for: .standard))
        #expect(try catalogue.vectorCount(model: try Fixture.embedder().model.id, variant: augmented) == total)
        #expect(check.2 == 0)                // no dangling references
        #expect(check.3 == 0)                // every image has a path
        #expect(check.4 == 0)                // every image has its embedding
        // The last rerun found nothing left to do for what was committed before the kills.
        let again = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [folder.path])
        #expect(again.embedded == 0 && again.unchanged == total)
    }

    @Test func searchWorksWhileAnotherProcessIndexes() async throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        _ = try Fixture.makeDistinctCopies(in: folder, copies: 3)
        let db = dir.appendingPathComponent("lib.db")
        // Seed the library so there is something to search from the start.
        let catalogue = try Catalogue(path: db.path)
        _ = try Indexer(catalogue: catalogue, embedder: Fixture.embedder()).run(roots: [Fixture.samples.appendingPathComponent("pizza").path])
        let process = try Fixture.launchIndex(folder: folder, db: db)
        var searches = 0
        var sizes: [Int] = []
        let query = try #require(try catalogue.imageId(path: Fixture.samples.appendingPathComponent("pizza/image_0001.jpg").standardizedFileURL.path))
        while process.isRunning {
            let service = try SearchService(catalogue: catalogue)
            let results = try await service.search(imageId: query, k: 3, metric: .cosine)
            #expect(results.count == 3)
            sizes.append(service.library.count)
            searches += 1
        }
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(searches >= 2)
        #expect(sizes == sizes.sorted())     // the library only grows while indexing runs
    }
}

@Suite(.serialized) struct PhotoFactsTests {
    static func fixture(_ name: String) throws -> URL {
        let candidates = ["decode", "formats", ""].map {
            Fixture.packageRoot.appendingPathComponent("Tests/EngineTests/Fixtures").appendingPathComponent($0).appendingPathComponent(name)
        }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw CatalogueError("fixture \(name) not found")
        }
        return found
    }

    @Test func indexStoresPhotoFactsAndFillsInOlderImages() async throws {
        let dir = try Fixture.tempDir()
        let photos = dir.appendingPathComponent("phone")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        for name in ["exif.jpg", "exif.heic"] {
            try FileManager.default.copyItem(at: try Self.fixture(name), to: photos.appendingPathComponent(name))
        }
        try Fixture.copySamples(to: photos, classes: ["pizza"])
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let indexer = try Indexer(catalogue: catalogue, embedder: Fixture.embedder())
        _ = try indexer.run(roots: [photos.path])
        let heic = try #require(try catalogue.imageId(path: photos.appendingPathComponent("exif.heic").path))
        let record = try #require(try catalogue.image(id: heic))
        #expect(record.capturedAt == "2023-06-14T09:41:05+02:00")
        #expect(record.cameraMake == "Apple" && record.cameraModel == "iPhone 13")
        #expect(abs((record.gpsLatitude ?? 0) - 40.689278) < 1e-4 && record.metadataRead)

        // An older library (facts never read): the next run fills them in without re-embedding.
        try await catalogue.pool.write { db in
            try db.execute(sql: "UPDATE image SET capturedAt = NULL, cameraMake = NULL, cameraModel = NULL, gpsLatitude = NULL, gpsLongitude = NULL, metadataRead = 0")
        }
        let again = try indexer.run(roots: [photos.path])
        #expect(again.embedded == 0 && again.metadataFilled == 8)
        #expect(try catalogue.image(id: heic)?.capturedAt == "2023-06-14T09:41:05+02:00")
        #expect(try catalogue.imagesWithoutMetadata().isEmpty)

        // Search answers carry them.
        let service = try SearchService(catalogue: catalogue)
        let jpeg = try #require(try catalogue.imageId(path: photos.appendingPathComponent("exif.jpg").path))
        let results = try await service.search(imageId: jpeg, k: 8, metric: .cosine)
        let hit = try #require(results.first { $0.id == heic })
        #expect(hit.facts?.cameraModel == "iPhone 13")
        #expect(results.filter { $0.label == "phone" && $0.id != heic }.allSatisfy { $0.facts == nil || $0.facts?.capturedAt == nil })
    }
}
