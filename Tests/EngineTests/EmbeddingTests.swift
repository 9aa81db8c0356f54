// Embedding tests: the full decode -> preprocess -> network path (cat photo classified as a cat),
// Embedding's derived fields (unit vector, softmax top-5 with labels), ModelInfo, and the ordered,
// pipelined `embedFiles` (input order kept, failures reported in place). Needs the converted weights.
import Foundation
import Testing
@testable import LookalikeEngine

@Suite("Embedder") struct EmbeddingTests {
    static let embedder: Result<Embedder, Error> = Result { try Embedder(weightsURL: try TestSupport.weightsURL(), threads: 2, descriptor: .centreCrop) }
    static let catClasses: Set<Int> = [281, 282, 285]  // tabby, tiger cat, Egyptian cat

    func catPath() throws -> String { try TestSupport.fixturesURL().appendingPathComponent("cat.jpg").path }

    @Test func modelInfo() throws {
        let e = try Self.embedder.get()
        #expect(e.model.id == "efficientnet-lite0")
        #expect(e.model.dimension == 1280)
        #expect(e.model.checksum == (try TestSupport.weights.get()).checksum)
    }

    @Test func catPhotoThroughDecoderIsACat() throws {
        let (image, emb) = try Self.embedder.get().embed(path: try catPath())
        #expect(image.width == 451 && image.height == 300)
        #expect(image.pixels.count == 224 * 224 * 3)
        let top1 = try #require(emb.top5.first)
        #expect(Self.catClasses.contains(top1.classId), "top-5: \(emb.top5)")
        #expect(emb.top5.filter { Self.catClasses.contains($0.classId) }.map(\.probability).reduce(0, +) > 0.6)
        // JPEG decoding + resampling reproduce the reference's (Pillow's) pixels exactly, so the
        // whole path matches the reference feature to float rounding.
        let ref = try TestSupport.feature("cat")
        let cosine = zip(emb.vector, ref).map { $0 * $1 }.reduce(0, +) / sqrt(ref.map { $0 * $0 }.reduce(0, +))
        #expect(cosine > 0.9999, "cosine to the reference feature \(cosine)")
        let maxDiff = zip(emb.feature, ref).map { abs($0 - $1) }.max() ?? 1
        #expect(maxDiff < 1e-3, "max abs difference to the reference feature \(maxDiff)")
    }

    /// The library default, whole+rmac: the whole image stretched to 224 x 224, unit average pool
    /// plus unit R-MAC of the head's 7x7 map, against an independent Python computation (Pillow +
    /// ONNX Runtime + numpy, scripts/explore_descriptors.py golden).
    @Test func wholeRMACMatchesThePythonComputation() throws {
        let e = try Embedder(weightsURL: try TestSupport.weightsURL(), threads: 1, descriptor: .wholeRMAC)
        #expect(e.model.id == "efficientnet-lite0/whole+rmac" && Descriptor(modelID: e.model.id) == .wholeRMAC)
        #expect(Descriptor(modelID: "efficientnet-lite0") == .centreCrop)
        let (image, emb) = try e.embed(path: try catPath())
        let ref = try TestSupport.feature("cat-whole-rmac")
        let cosine = zip(emb.vector, ref).map { $0 * $1 }.reduce(0, +)
        #expect(cosine > 0.9995, "cosine to the Python whole+rmac vector \(cosine)")
        #expect(abs(emb.vector.map { $0 * $0 }.reduce(0, +) - 1) < 1e-4)
        // Not the reference's vector: another view and pooling of the same photo (still a cat).
        let (_, reference) = try Self.embedder.get().embed(path: try catPath())
        let toCentreCrop = zip(emb.vector, reference.vector).map { $0 * $1 }.reduce(0, +)
        #expect(toCentreCrop < 0.99 && toCentreCrop > 0.7, "whole+rmac vs centre-crop \(toCentreCrop)")
        #expect(emb.top5.first.map { Self.catClasses.contains($0.classId) } == true, "top-5: \(emb.top5)")
        #expect(image.pixels.count == 224 * 224 * 3)
        #expect(Descriptor.regions(side: 7).count == 14)
    }

    /// `.whole` keeps what the centre crop cuts off: a 3:1 picture red | green | blue reaches the
    /// network's left and right edges as red and blue, where the centre crop sees only green.
    @Test func wholeGeometryKeepsTheEdges() throws {
        let (w, h) = (600, 200)
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w { rgb[(y * w + x) * 3 + x / 200] = 255 }
        }
        let jpeg = try #require(PreviewEncoder.jpeg(rgb: rgb, width: w, height: h, quality: 95))
        func channel(_ image: DecodedImage, x: Int) -> Int {
            let at = (112 * 224 + x) * 3
            return (0..<3).max { image.pixels[at + $0] < image.pixels[at + $1] } ?? -1
        }
        let whole = try ImageDecoder.decode(data: jpeg, name: "stripes", geometry: .whole)
        let crop = try ImageDecoder.decode(data: jpeg, name: "stripes")
        #expect(whole.width == w && whole.height == h)
        #expect(channel(whole, x: 5) == 0 && channel(whole, x: 112) == 1 && channel(whole, x: 218) == 2)
        #expect(channel(crop, x: 5) == 1 && channel(crop, x: 218) == 1)
    }

    @Test func sameImageAsJPEGAndPNGEmbedsAlike() throws {
        // cat.png is the lossless original, cat.jpg its JPEG (quality 95): different files and
        // decoders, one picture.
        let e = try Self.embedder.get()
        let png = try e.embed(path: TestSupport.fixturesURL().appendingPathComponent("cat.png").path).1
        let jpg = try e.embed(path: try catPath()).1
        let cosine = zip(png.vector, jpg.vector).map { $0 * $1 }.reduce(0, +)
        #expect(cosine >= 0.99, "cosine JPEG vs PNG \(cosine)")
        #expect(png.top5.first?.classId == jpg.top5.first?.classId)
    }

    @Test func goldenPixelsGiveReferenceLabelsAndUnitVectors() throws {
        let e = try Self.embedder.get()
        for (name, ref) in try TestSupport.golden().images {
            let emb = try e.embed(pixels: try TestSupport.pixels(name))
            #expect(emb.feature.count == 1280 && emb.vector.count == 1280 && emb.logits.count == 1000)
            #expect(emb.feature.allSatisfy { $0 >= 0 })
            let norm = emb.vector.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            #expect(abs(norm - 1) < 1e-4)
            #expect(emb.top5.count == 5)
            #expect(zip(emb.top5, emb.top5.dropFirst()).allSatisfy { $0.probability >= $1.probability })
            for (label, r) in zip(emb.top5, ref.top5) where r[1] > 0.01 {
                #expect(label.classId == Int(r[0]), "\(name): \(emb.top5) vs \(ref.top5)")
                #expect(abs(Double(label.probability) - r[1]) < 1e-3)
            }
            #expect(emb.top5[0].name == e.labels[emb.top5[0].classId])
            if name == "cat" { #expect(Self.catClasses.contains(emb.top5[0].classId)) }
        }
        #expect(throws: (any Error).self) { try e.embed(pixels: [1, 2, 3]) }
    }

    @Test func embedFilesKeepsInputOrderAndReportsFailures() throws {
        let e = try Self.embedder.get()
        let cat = try catPath()
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("missing-\(UUID().uuidString).jpg").path
        var paths: [String] = []
        for i in 0..<13 { paths.append(i % 5 == 3 ? missing : cat) }
        let log = ResultLog()
        e.embedFiles(paths) { index, path, result in log.append(index, path, result) }
        let got = log.entries
        #expect(got.map(\.0) == Array(paths.indices))
        #expect(got.map(\.1) == paths)
        let single = try e.embed(path: cat).1
        for (i, _, r) in got {
            if paths[i] == missing {
                #expect(r == nil)
            } else {
                #expect(r.map { TestSupport.maxAbsDiff($0, single.feature) } ?? 1 <= 1e-5)
            }
        }
        e.embedFiles([]) { _, _, _ in Issue.record("no results expected") }
    }
}

final class ResultLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(Int, String, [Float]?)] = []
    func append(_ i: Int, _ p: String, _ r: Result<(DecodedImage, Embedding), Error>) {
        lock.lock(); items.append((i, p, try? r.get().1.feature)); lock.unlock()
    }
    var entries: [(Int, String, [Float]?)] { lock.lock(); defer { lock.unlock() }; return items }
}
