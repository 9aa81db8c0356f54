// Spatial verification: edited copies of a photo match it by local features under one similarity
// transform, other photos (same class included) do not; a search with `verify` puts the original
// first and says so, and a candidate whose file is gone is answered unverified.
import Foundation
import LookalikeEngine
import Testing
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch
@testable import LookalikeVerification

@Suite struct VerificationTests {
    static func edited(_ photo: String, _ name: String) throws -> [UInt8] {
        let t = try #require(Transformation.standard.first { $0.name == name })
        return try t.apply(toFile: photo)
    }

    @Test func editedCopiesVerifyAgainstTheirOriginalAndNotAgainstOtherPhotos() throws {
        let photo = Fixture.samples.appendingPathComponent("airplanes/image_0001.jpg").path
        let original = try LocalFeatures.extract(path: photo)
        #expect(original.count >= 50)
        #expect(max(original.width, original.height) <= LocalFeatures.maximumSide)
        // The same class, the same kind of picture: not the same photo.
        let sibling = try LocalFeatures.extract(path: Fixture.samples.appendingPathComponent("airplanes/image_0002.jpg").path)
        let other = try LocalFeatures.extract(path: Fixture.samples.appendingPathComponent("dalmatian/image_0001.jpg").path)
        for name in ["crop 50% corner", "rotate -15", "rotate 90", "grey square 25%", "three lines of text", "scale x0.25", "horizontal flip"] {
            let query = try QueryFeatures(data: Self.edited(photo, name), name: name)
            let own = query.inliers(original)
            #expect(own >= 2 * SpatialVerifier.minimumInliers, "\(name): \(own) inliers with its original")
            #expect(query.inliers(sibling) < SpatialVerifier.minimumInliers, "\(name) verified against another airplane")
            #expect(query.inliers(other) < SpatialVerifier.minimumInliers, "\(name) verified against a dalmatian")
        }
        // The mirror image only through the mirrored query's features.
        let flipped = try Self.edited(photo, "horizontal flip")
        let asIs = try LocalFeatures.extract(data: flipped, name: "flip")
        let mirrored = try LocalFeatures.extract(data: flipped, name: "flip", mirrored: true)
        #expect(SpatialVerifier.inliers(query: asIs, candidate: original) < SpatialVerifier.minimumInliers)
        #expect(SpatialVerifier.inliers(query: mirrored, candidate: original) >= 2 * SpatialVerifier.minimumInliers)
        #expect(throws: IndexError.self) { _ = try LocalFeatures.extract(data: Array("not an image".utf8), name: "text.jpg") }
        #expect(throws: IndexError.self) { _ = try LocalFeatures.extract(path: "/no/such/photo.jpg") }
    }

    @Test func verifiedSearchPutsTheOriginalFirstAndSurvivesAMissingFile() async throws {
        let samples = try Fixture.indexedSamples()
        let (folder, catalogue) = (samples.folder, samples.catalogue)
        let service = try SearchService(catalogue: catalogue)
        let photo = folder.appendingPathComponent("airplanes/image_0003.jpg").path
        let originalId = try #require(try catalogue.imageId(path: photo))
        let bytes = try Self.edited(photo, "grey square 25%")

        var request = SearchRequest(k: 5)
        request.verify = 20
        let answer = try await service.search(.upload(bytes: bytes, name: "covered.jpg"), request)
        #expect(answer.results.count == 5)
        #expect(answer.results.first?.id == originalId)
        #expect((answer.results.first?.inliers ?? 0) >= SpatialVerifier.minimumInliers)
        #expect(answer.results.dropFirst().allSatisfy { $0.inliers == nil })
        #expect(answer.results.map(\.rank) == [1, 2, 3, 4, 5])
        #expect(answer.reranking.hasSuffix("+verify:20"))
        // The raw cosine of the query's embedding is reported beside the score; verified first, the list reads in order.
        let engine = try Fixture.embedder()
        let vector = try engine.embed(engine.decode(data: bytes, name: "covered.jpg")).vector
        let raw = try #require(service.library.store.reconstruct(originalId))
        #expect(abs((answer.results.first?.cosine ?? 0) - VectorStore.dot(raw, vector)) < 1e-4)
        #expect(answer.results.map(\.score) == answer.results.map(\.score).sorted(by: >), "\(answer.results.map(\.score))")

        // Without verification nothing is marked; a library image is never verified (it is the photo).
        var off = SearchRequest(k: 5)
        off.verify = 0
        let plain = try await service.search(.upload(bytes: bytes, name: "covered.jpg"), off)
        #expect(plain.results.allSatisfy { $0.inliers == nil } && !plain.reranking.contains("verify"))
        let inside = try await service.search(.id(originalId), request)
        #expect(inside.results.allSatisfy { $0.inliers == nil } && !inside.reranking.contains("verify"))

        // The original's file disappears: the search still answers, the photo is no longer verified.
        let fresh = try SearchService(catalogue: catalogue)
        try FileManager.default.removeItem(atPath: photo)
        let gone = try await fresh.search(.upload(bytes: bytes, name: "covered.jpg"), request)
        #expect(gone.results.count == 5)
        #expect(gone.results.allSatisfy { $0.id != originalId || $0.inliers == nil })
    }
}

/// The visual-word index: built from the library's local features, it finds the original of an
/// edited copy by the words they share, whatever the global descriptor ranked; it survives a
/// round trip through its file, is refused when damaged, and `index` keeps it current.
@Suite struct VisualWordTests {
    @Test func wordsFindTheOriginalAndTheFileFollowsTheLibrary() async throws {
        let samples = try Fixture.indexedSamples()
        let (folder, catalogue, indexer) = (samples.folder, samples.catalogue, samples.indexer)
        let library = try LiveLibrary(catalogue: catalogue)
        let images = try VisualWordIndex.libraryImages(catalogue: catalogue, liveIds: library.store.liveIds)
        #expect(images.count == 36)
        let (index, summary) = try VisualWordIndex.build(images: images, previous: nil, words: 256)
        #expect(summary.trained && summary.added == 36 && summary.unreadable.isEmpty && index.count == 36)
        #expect(summary.words >= 16 && summary.words <= 256)
        #expect(index.entries.values.allSatisfy { $0.count > 0 && $0.words == $0.words.sorted() })

        // Edited copies: the original is among the six sharing the most words of the 36 (the
        // candidates verification then checks; a 256-word vocabulary learnt by k-means on every
        // core is not bit-for-bit the same from run to run, so the order of close ones varies).
        let photo = folder.appendingPathComponent("airplanes/image_0003.jpg").path
        let originalId = try #require(try catalogue.imageId(path: photo))
        for name in ["grey square 25%", "rotate +15", "rotate 90", "crop 50% corner", "horizontal flip"] {
            let query = try QueryFeatures(data: VerificationTests.edited(photo, name), name: name)
            let words = index.keypoints(query)
            let found = index.candidates(words: words.words, limit: 6)
            #expect(found.contains(originalId), "\(name): \(found)")
            #expect(!index.candidates(words: words.words, limit: 3) { $0 != originalId }.contains(originalId))
            // The stored keypoints verify the copy against its original, and against no other photo.
            let own = words.inliers(try #require(index.entries[originalId]))
            #expect(own >= SpatialVerifier.minimumWordInliers, "\(name): \(own) inliers with its original's stored keypoints")
            let others = index.entries.filter { $0.key != originalId }.map { words.inliers($0.value) }
            #expect((others.max() ?? 0) < SpatialVerifier.minimumWordInliers, "\(name): another photo verified (\(others.max() ?? 0) inliers)")
        }

        // The file: a round trip keeps every image's words; a damaged one is refused and left unused.
        let url = VisualWordIndex.url(for: catalogue)
        let file = VisualWordsFile(url: url, catalogue: catalogue.identity)
        #expect(file.index() == nil && file.problem == nil)
        try index.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: try catalogue.changeCounter()))
        let read = try #require(try VisualWordIndex.read(url, catalogue: catalogue.identity))
        #expect(read.entries == index.entries && read.vocabulary.count == index.vocabulary.count)
        #expect(file.index()?.count == 36)

        // A verified search with a shortlist of one still reaches the original through the words.
        let service = try SearchService(catalogue: catalogue)
        let bytes = try VerificationTests.edited(photo, "rotate 90")
        var request = SearchRequest(k: 3)
        request.verify = 1
        let answer = try await service.search(.upload(bytes: bytes, name: "turned.jpg"), request)
        #expect(answer.results.first?.id == originalId && (answer.results.first?.inliers ?? 0) >= SpatialVerifier.minimumInliers)
        #expect(answer.reranking.hasSuffix("+verify:1+words:\(VisualWordIndex.candidates)"))
        let features = try QueryFeatures(data: bytes, name: "turned.jpg")
        let engine = try Fixture.embedder()
        let vector = try engine.embed(engine.decode(data: bytes, name: "turned.jpg")).vector
        let (alone, added) = try service.verify([], query: features, vector: vector, metric: .cosine, k: 3)
        #expect(alone.first?.id == originalId && added == 36)
        // A restriction holds for the words' candidates too.
        let (restricted, _) = try service.verify([], query: features, vector: vector, metric: .cosine, k: 3) { $0 != originalId }
        #expect(!restricted.contains { $0.id == originalId })

        var bytesOnDisk = try [UInt8](Data(contentsOf: url))
        bytesOnDisk[bytesOnDisk.count / 2] ^= 0xFF
        try Data(bytesOnDisk).write(to: url)
        #expect(throws: IndexError.self) { _ = try VisualWordIndex.read(url, catalogue: catalogue.identity) }
        #expect(file.index() == nil && (file.problem ?? "").contains("checksum"))

        // `index` keeps a file that exists current: a damaged one is rebuilt, then new and removed
        // images are followed without recomputing the others.
        let rebuilt = try #require(try VisualWordIndex.refresh(catalogue: catalogue, liveIds: library.store.liveIds).summary)
        #expect(rebuilt.trained && rebuilt.images == 36)
        let vocabulary = try #require(try VisualWordIndex.read(url, catalogue: catalogue.identity)).vocabulary.centres
        let added1 = folder.appendingPathComponent("airplanes/turned.jpg")
        try Data(bytes).write(to: added1)
        try FileManager.default.removeItem(atPath: folder.appendingPathComponent("pizza/image_0001.jpg").path)
        let run = try indexer.run(roots: [folder.path], prune: true)
        let words = try #require(run.visualWords)
        #expect(words.added == 1 && words.removed == 1 && words.kept == 35 && words.images == 36 && !words.trained)
        let after = try #require(try VisualWordIndex.read(url, catalogue: catalogue.identity))
        #expect(after.vocabulary.centres == vocabulary)
        let turnedId = try #require(try catalogue.imageId(path: added1.path))
        #expect(after.entries[turnedId] != nil && after.entries[originalId] != nil)
        // Nothing changed: nothing rewritten.
        #expect(try indexer.run(roots: [folder.path]).visualWords == nil)
    }

    /// With no options, an upload of an edited copy finds its original first: before the library's
    /// local features exist (its best candidates checked from their files) and after (stored
    /// keypoints, plus the images sharing the most words); an upload that is already a clear copy
    /// is answered without verification.
    @Test func theDefaultSearchFindsTheOriginalOfAnEditedCopy() async throws {
        let samples = try Fixture.indexedSamples()
        let (folder, catalogue, first) = (samples.folder, samples.catalogue, samples.first)
        #expect(first.localFeaturesPending == 36 && first.visualWords == nil)
        let photo = folder.appendingPathComponent("dalmatian/image_0002.jpg").path
        let originalId = try #require(try catalogue.imageId(path: photo))
        let edits = ["grey square 25%", "rotate -15", "crop 50% centre", "three lines of text"]

        for stage in ["from files", "stored"] {
            let service = try SearchService(catalogue: catalogue)
            for name in edits {
                let answer = try await service.search(.upload(bytes: VerificationTests.edited(photo, name), name: "edited.jpg"), SearchRequest(k: 5))
                #expect(answer.results.first?.id == originalId, "\(stage), \(name): \(answer.results.map(\.path))")
                #expect((answer.results.first?.inliers ?? 0) >= SpatialVerifier.minimumInliers, "\(stage), \(name)")
                #expect(answer.reranking.contains("+verify:"), "\(stage), \(name): \(answer.reranking)")
                #expect(answer.reranking.contains("+words:") == (stage == "stored"), "\(stage): \(answer.reranking)")
                #expect(answer.results.count == 5 && answer.notes.allSatisfy { !$0.contains("verify") })
            }
            // The photo itself, uploaded: a clear copy, first without verification.
            let same = try await service.search(.upload(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: photo))), name: "same.jpg"), SearchRequest(k: 5))
            #expect(same.results.first?.id == originalId && !same.reranking.contains("verify"))
            if stage == "from files" {
                // The job `index` starts in the background, run here.
                let made = try #require(try LocalFeaturesJob.run(catalogue: catalogue, liveIds: { service.library.store.liveIds }, wait: true))
                #expect(made.images == 36 && made.added == 36 && made.trained)
                #expect(LocalFeaturesJob.missing(catalogue: catalogue, liveIds: service.library.store.liveIds).missing == 0)
                let status = try DerivedFiles.status(catalogue: catalogue).first { $0.kind == "local features" }
                #expect(status?.current == true && (status?.bytes ?? 0) > 0)
            }
        }
    }
}
