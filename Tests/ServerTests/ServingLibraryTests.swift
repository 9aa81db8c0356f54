// The library pieces the server relies on, tested directly: batched searches give exactly what
// single searches give (exclusions and k per query included), concurrent callers are batched, crop
// boxes are validated, address checks refuse the machine's own networks, and paths are shown
// relative to the library's folders with folder restrictions mapped back safely.
import Foundation
import LookalikeEngine
import LookalikeCatalogue
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
import Testing

@Suite struct ServingLibraryTests {
    @Test func batchedSearchesEqualSingleOnes() async throws {
        let catalogue = try Catalogue(path: try ServerFixture.libraryPath(), mustExist: true)
        let library = try LiveLibrary(catalogue: catalogue)
        let batcher = SearchBatcher(library: library, window: 0.005)
        let ids = Array(library.store.liveIds.prefix(24))
        let exact = try library.index(for: IndexDescriptor(method: "exact"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, id) in ids.enumerated() {
                group.addTask {
                    let vector = try #require(library.store.reconstruct(id))
                    let k = 3 + i % 7
                    let metric: Metric = i % 3 == 0 ? .euclidean : .cosine
                    let parameters = SearchParameters(metric: metric, excluding: [id])
                    let batched = try await batcher.search(vector, k: k, descriptor: IndexDescriptor(method: "exact", metric: metric),
                                                           parameters: parameters)
                    let single = try exact.search(vector, k: k, parameters: parameters)
                    #expect(batched.map(\.id) == single.map(\.id))
                    #expect(zip(batched, single).allSatisfy { abs($0.distance - $1.distance) < 1e-4 })
                    #expect(!batched.contains { $0.id == id } && batched.count == k)
                }
            }
            try await group.waitForAll()
        }
        let statistics = batcher.statistics
        #expect(statistics.queries == ids.count)
        #expect(statistics.batches < ids.count && statistics.largestBatch > 1)
    }

    @Test func rerankedSearchesThroughTheBatcherEqualUnbatchedOnes() async throws {
        let catalogue = try Catalogue(path: try ServerFixture.libraryPath(), mustExist: true)
        let library = try LiveLibrary(catalogue: catalogue)
        #expect(library.augmentedVariant != nil)  // the fixture library has the default re-ranking's vectors
        let batcher = SearchBatcher(library: library, window: 0.005)
        // Computed through the batcher (not read from the answer lists `index` made: those are
        // compared with computed answers in libraryImagesAreAnsweredFromTheAnswerLists).
        let batched = SearchService(library: library, resolver: QueryResolver(library: library) { try Embedder(descriptor: $0) }, batcher: batcher,
                                    answerLists: false)
        let plain = SearchService(library: library, resolver: QueryResolver(library: library) { try Embedder(descriptor: $0) })
        let ids = Array(library.store.liveIds.prefix(16))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, id) in ids.enumerated() {
                group.addTask {
                    let request = SearchRequest(k: 4 + i % 5)
                    let a = try await batched.search(.id(id), request)
                    let b = try await plain.search(.id(id), request)
                    #expect(a.reranking == Reranking.libraryDefault.description && a.reranking == b.reranking)
                    #expect(a.results.map(\.id) == b.results.map(\.id))
                    #expect(zip(a.results, b.results).allSatisfy { abs($0.score - $1.score) < 1e-4 })
                    #expect(a.results.count == request.k && !a.results.contains { $0.id == id })
                }
            }
            try await group.waitForAll()
        }
        // One scan per query, shared between concurrent queries: the final ranking's (a library
        // image's expansion neighbours are read from the diffusion graph's lists, not scanned).
        let statistics = batcher.statistics
        #expect(statistics.queries == ids.count)
        #expect(statistics.batches < statistics.queries && statistics.largestBatch > 1)
    }

    @Test func cropBoxes() throws {
        let box = try CropBox(parsing: "0.1, 0.2, 0.5,0.5")
        #expect(box.x == 0.1 && box.height == 0.5)
        for bad in ["", "1,2,3", "0.5,0.5,0.6,0.1", "-0.1,0,0.5,0.5", "0,0,0,0.5", "a,b,c,d", "0,0,1.5,1", "nan,0,1,1"] {
            #expect(throws: CropBox.Invalid.self, "\(bad)") { try CropBox(parsing: bad) }
        }
        // A region decodes to the network's geometry and differs from the whole image.
        let bytes = [UInt8](try Data(contentsOf: ServerFixture.queries.appendingPathComponent("pizza_0010.jpg")))
        let whole = try ImageDecoder.decode(data: bytes, name: "pizza")
        let left = try ImageDecoder.decode(data: bytes, name: "pizza", crop: try CropBox(x: 0, y: 0, width: 0.5, height: 1))
        #expect(left.pixels.count == whole.pixels.count && left.pixels != whole.pixels)
        #expect(left.width == whole.width)  // original size is reported, not the region's
        let everything = try ImageDecoder.decode(data: bytes, name: "pizza", crop: try CropBox(x: 0, y: 0, width: 1, height: 1))
        let difference = zip(everything.pixels, whole.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        #expect(Double(difference) / Double(whole.pixels.count) < 3)  // libvips vs the Pillow-exact path: nearly equal
        // The same with the whole image stretched to the square (the whole+rmac descriptor's view).
        let stretched = try ImageDecoder.decode(data: bytes, name: "pizza", geometry: .whole)
        let stretchedRegion = try ImageDecoder.decode(data: bytes, name: "pizza", crop: try CropBox(x: 0, y: 0, width: 1, height: 1), geometry: .whole)
        let stretchedDifference = zip(stretched.pixels, stretchedRegion.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        #expect(stretched.pixels != whole.pixels && Double(stretchedDifference) / Double(whole.pixels.count) < 3)
    }

    @Test func addressChecks() throws {
        func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> AddressCheck.Address { .init(bytes: [a, b, c, d]) }
        for inside in [v4(127, 0, 0, 1), v4(10, 0, 0, 1), v4(172, 16, 0, 1), v4(172, 31, 255, 1), v4(192, 168, 0, 1),
                         v4(169, 254, 169, 254), v4(100, 64, 0, 1), v4(0, 0, 0, 0), v4(224, 0, 0, 1), v4(255, 255, 255, 255)] {
            #expect(AddressCheck.isInternal(inside), "\(inside.text)")
        }
        for external in [v4(8, 8, 8, 8), v4(172, 32, 0, 1), v4(93, 184, 216, 34), v4(100, 128, 0, 1)] {
            #expect(!AddressCheck.isInternal(external), "\(external.text)")
        }
        let loopback6 = AddressCheck.Address(bytes: Array(repeating: 0, count: 15) + [1])
        let mapped = AddressCheck.Address(bytes: Array(repeating: 0, count: 10) + [0xFF, 0xFF, 127, 0, 0, 1])
        let linkLocal = AddressCheck.Address(bytes: [0xFE, 0x80] + Array(repeating: 0, count: 13) + [1])
        let uniqueLocal = AddressCheck.Address(bytes: [0xFD, 0x12] + Array(repeating: 0, count: 14))
        let global = AddressCheck.Address(bytes: [0x26, 0x06, 0x28, 0x00] + Array(repeating: 0, count: 11) + [1])
        for inside in [loopback6, mapped, linkLocal, uniqueLocal] { #expect(AddressCheck.isInternal(inside), "\(inside.text)") }
        #expect(!AddressCheck.isInternal(global))
        #expect(try AddressCheck.resolve(host: "localhost", port: 80).allSatisfy(AddressCheck.isInternal))
        #expect(throws: QueryError.self) { try AddressCheck.resolve(host: "no-such-host.invalid", port: 80) }
    }

    @Test func foldersShowRelativePaths() {
        let folders = LibraryFolders(roots: ["/data/photos", "/data/photos/2024", "/mnt/cam/"])
        #expect(folders.display("/data/photos/a/b.jpg") == "photos/a/b.jpg")
        #expect(folders.display("/data/photos/2024/x.jpg") == "2024/x.jpg")
        #expect(folders.display("/mnt/cam/DCIM/1.jpg") == "cam/DCIM/1.jpg")
        #expect(folders.display("/elsewhere/deep/dir/z.jpg") == "dir/z.jpg")
        #expect(folders.absolutePrefix(folder: "photos/a") == "/data/photos/a/")
        #expect(folders.absolutePrefix(folder: "cam") == "/mnt/cam/")
        #expect(folders.absolutePrefix(folder: "photos/../../etc") == nil)
        #expect(folders.absolutePrefix(folder: "unknown") == nil)
    }
}
