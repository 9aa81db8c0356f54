// Network tests: the Swift/XNNPACK network against golden outputs of the Python reference
// (peer.py on ONNX Runtime, Fixtures/golden), and the weights file's validation (corrupted copies
// must be refused with the right typed error). Needs models/efficientnet-lite0.lkw (`make setup`).
import Foundation
import Testing
@testable import LookalikeEngine

enum TestSupport {
    static func fixturesURL() throws -> URL {
        if let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) { return url }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }
    static func weightsURL() throws -> URL {
        if let url = try? ModelLocator.defaultWeightsURL() { return url }
        // Tests run from the package root; also look next to this source file's package.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("models/efficientnet-lite0.lkw")
    }
    static let weights: Result<WeightsFile, Error> = Result { try WeightsFile.load(url: try weightsURL()) }
    static let graph: Result<EfficientNetLiteGraph, Error> = Result { try EfficientNetLiteGraph(weights: try weights.get()) }

    struct Golden: Decodable {
        struct Image: Decodable { let source: String; let top5: [[Double]] }
        let images: [String: Image]
    }
    static func golden() throws -> Golden {
        let data = try Data(contentsOf: try fixturesURL().appendingPathComponent("golden/golden.json"))
        return try JSONDecoder().decode(Golden.self, from: data)
    }
    static func pixels(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: try fixturesURL().appendingPathComponent("golden/\(name).rgb")))
    }
    static func feature(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: try fixturesURL().appendingPathComponent("golden/\(name).f32"))
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }
    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }
}

@Suite("Network vs reference") struct NetworkTests {
    @Test func goldenFeaturesMatchReference() throws {
        let runner = try NetworkRunner(graph: try TestSupport.graph.get(), batchSize: 1, threads: 1)
        let golden = try TestSupport.golden()
        #expect(golden.images.count >= 4)
        var worst: Float = 0
        for (name, ref) in golden.images.sorted(by: { $0.key < $1.key }) {
            let pixels = try TestSupport.pixels(name)
            #expect(pixels.count == 224 * 224 * 3)
            let out = try runner.run(count: 1) { Preprocessing.tensor(from: pixels, into: $0) }[0]
            let expected = try TestSupport.feature(name)
            #expect(expected.count == 1280 && out.feature.count == 1280)
            let diff = TestSupport.maxAbsDiff(out.feature, expected)
            worst = max(worst, diff)
            #expect(diff <= 1e-3, "\(name): max abs feature diff \(diff)")
            let top1 = out.logits.indices.max { out.logits[$0] < out.logits[$1] }
            #expect(top1 == Int(ref.top5[0][0]), "\(name): top-1 \(String(describing: top1)) vs reference \(ref.top5[0][0])")
        }
        print("golden: max abs feature diff vs reference = \(worst)")
    }

    @Test func batchedMultiThreadedRunMatchesBatchOne() throws {
        let graph = try TestSupport.graph.get()
        let single = try NetworkRunner(graph: graph, batchSize: 1, threads: 1)
        let batched = try NetworkRunner(graph: graph, batchSize: 4, threads: 2)
        let names = try TestSupport.golden().images.keys.sorted().prefix(3)
        let all = try names.flatMap { try TestSupport.pixels($0) }
        let outs = try batched.run(count: names.count) { p in
            for (i, name) in names.enumerated() {
                Preprocessing.tensor(from: try TestSupport.pixels(name), into: p + i * NetworkRunner.inputElements)
            }
        }
        #expect(outs.count == names.count)
        for (i, _) in names.enumerated() {
            let px = Array(all[(i * 150528)..<((i + 1) * 150528)])
            let one = try single.run(count: 1) { Preprocessing.tensor(from: px, into: $0) }[0]
            #expect(TestSupport.maxAbsDiff(one.feature, outs[i].feature) <= 1e-4)
            #expect(TestSupport.maxAbsDiff(one.logits, outs[i].logits) <= 1e-3)
        }
        #expect(throws: NetworkError.self) { try single.run(count: 2) { _ in } }
    }

    @Test func preprocessingIsAffine() {
        var out = [Float](repeating: 0, count: Preprocessing.pixelCount)
        var px = [UInt8](repeating: 0, count: Preprocessing.pixelCount)
        px[0] = 255; px[1] = 127; px[2] = 0
        out.withUnsafeMutableBufferPointer { Preprocessing.tensor(from: px, into: $0.baseAddress!) }
        #expect(out[0] == 1)
        #expect(out[1] == 0)
        #expect(out[2] == -127.0 / 128.0)
    }

    @Test func samePaddingMatchesTensorFlow() {
        #expect(EfficientNetLiteGraph.samePadding(size: 224, kernel: 3, stride: 2) == (112, 0, 1))
        #expect(EfficientNetLiteGraph.samePadding(size: 56, kernel: 5, stride: 2) == (28, 1, 2))
        #expect(EfficientNetLiteGraph.samePadding(size: 14, kernel: 5, stride: 1) == (14, 2, 2))
    }
}

@Suite("Weights file validation") struct WeightsFileTests {
    /// A copy of the real weights file with `edit` applied, in a fresh temporary directory.
    func corruptedCopy(_ edit: (inout [UInt8], Int) -> Void) throws -> URL {
        var bytes = [UInt8](try Data(contentsOf: try TestSupport.weightsURL()))
        var hlen = 0
        for i in 0..<8 { hlen |= Int(bytes[8 + i]) << (8 * i) }
        edit(&bytes, hlen)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lookalike-weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("efficientnet-lite0.lkw")
        try Data(bytes).write(to: url)
        return url
    }
    func replaceInHeader(_ bytes: inout [UInt8], _ hlen: Int, _ old: String, _ new: String) {
        precondition(old.utf8.count == new.utf8.count)
        let header = String(decoding: bytes[16..<(16 + hlen)], as: UTF8.self)
        guard let range = header.range(of: old) else { Issue.record("\(old) not in header"); return }
        let start = 16 + header.utf8.distance(from: header.startIndex, to: range.lowerBound)
        bytes.replaceSubrange(start..<(start + old.utf8.count), with: Array(new.utf8))
    }
    func reason(_ url: URL) -> WeightsFileError.Reason? {
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        do { _ = try WeightsFile.load(url: url); return nil } catch { return error.reason }
    }

    @Test func realFileLoads() throws {
        let w = try TestSupport.weights.get()
        #expect(w.modelName == "efficientnet-lite0")
        #expect(w.checksum.count == 64)
        #expect(w.labels.count == 1000)
        #expect(w.labels[281] == "tabby cat")
    }

    @Test func checksumMismatchIsRefused() throws {
        let url = try corruptedCopy { bytes, _ in bytes[bytes.count - 100] ^= 0x40 }
        #expect(reason(url) == .checksumMismatch)
        let message = WeightsFileError(path: url.path, reason: .checksumMismatch).description
        #expect(message.contains("checksum mismatch") && message.contains(url.path))
    }

    @Test func wrongVersionIsRefused() throws {
        let url = try corruptedCopy { replaceInHeader(&$0, $1, "\"version\":1", "\"version\":2") }
        #expect(reason(url) == .unsupportedVersion(2))
    }

    @Test func wrongShapeIsRefused() throws {
        let url = try corruptedCopy { replaceInHeader(&$0, $1, "[32,3,3,3]", "[32,3,9,1]") }
        #expect(reason(url) == .wrongShape(tensor: "_conv_stem.weight", expected: [32, 3, 3, 3], found: [32, 3, 9, 1]))
    }

    @Test func truncatedFileIsRefused() throws {
        let url = try corruptedCopy { bytes, _ in bytes.removeLast(bytes.count / 2) }
        #expect(reason(url) == .truncated)
        let tiny = try corruptedCopy { bytes, _ in bytes.removeLast(bytes.count - 12) }
        #expect(reason(tiny) == .truncated)
    }

    @Test func badMagicAndMissingFileAreRefused() throws {
        let url = try corruptedCopy { bytes, _ in bytes[0] = UInt8(ascii: "X") }
        #expect(reason(url) == .badMagic)
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).lkw")
        #expect(throws: WeightsFileError.self) { try WeightsFile.load(url: missing) }
        #expect(throws: (any Error).self) { try Embedder(weightsURL: missing) }
    }
}
