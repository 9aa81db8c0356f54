// NetworkRunner owns execution: it initialises XNNPACK once per process, creates one pthreadpool
// (with `threads` threads; none for 1) and one XNNPACK runtime for a fixed batch size from the
// EfficientNetLiteGraph subgraph, owns the input/output buffers bound to that runtime, and runs
// batches. One runtime is not re-entrant, so every call to `run` is serialised by a lock: share an
// instance between threads freely, but for parallelism create one runner per worker thread.
import CXNNPACK
import Foundation

public struct NetworkOutput: Sendable {
    public let feature: [Float]  // 1280: global average pool of the head (after ReLU6)
    public let logits: [Float]   // 1000: ImageNet class scores (before softmax)
    public let headMap: [Float]  // 7 x 7 x 1280 (HWC): the head's map that `feature` averages
}

public final class NetworkRunner: @unchecked Sendable {
    public static let inputElements = EfficientNetLite0.inputSize * EfficientNetLite0.inputSize * 3
    public let batchSize: Int
    public let threads: Int

    private let graph: EfficientNetLiteGraph  // keeps the static weight buffers alive
    private let runtime: OpaquePointer
    private let pool: OpaquePointer?
    private let input: UnsafeMutablePointer<Float>
    private let feature: UnsafeMutablePointer<Float>
    private let logits: UnsafeMutablePointer<Float>
    private let headMap: UnsafeMutablePointer<Float>
    static let headMapElements = EfficientNetLiteGraph.headMapSide * EfficientNetLiteGraph.headMapSide * EfficientNetLite0.headChannels
    private let lock = NSLock()

    private static let initialized: Bool = xnn_initialize(nil) == xnn_status_success

    public convenience init(weights: WeightsFile, batchSize: Int = 1, threads: Int = 1) throws {
        try self.init(graph: EfficientNetLiteGraph(weights: weights), batchSize: batchSize, threads: threads)
    }

    /// Several runners can share one folded graph (saves the folding time and the weight memory).
    public init(graph: EfficientNetLiteGraph, batchSize: Int = 1, threads: Int = 1) throws(NetworkError) {
        guard batchSize >= 1, threads >= 1 else { throw NetworkError("batch size and threads must be >= 1") }
        guard NetworkRunner.initialized else { throw NetworkError("xnn_initialize failed (unsupported CPU?)") }
        self.graph = graph
        self.batchSize = batchSize
        self.threads = threads
        let subgraph = try graph.makeSubgraph(batch: batchSize)
        defer { xnn_delete_subgraph(subgraph) }
        pool = threads > 1 ? pthreadpool_create(threads) : nil
        if threads > 1 && pool == nil { throw NetworkError("pthreadpool_create(\(threads)) failed") }
        var rt: OpaquePointer?
        let status = xnn_create_runtime_v2(subgraph, pool, 0, &rt)
        guard status == xnn_status_success, let runtime = rt else {
            if let pool { pthreadpool_destroy(pool) }
            throw NetworkError("xnn_create_runtime_v2 failed (xnn_status \(status.rawValue))")
        }
        self.runtime = runtime
        // XNNPACK may over-read inputs by a SIMD vector: add slack.
        input = .allocate(capacity: batchSize * NetworkRunner.inputElements + 64)
        input.initialize(repeating: 0, count: batchSize * NetworkRunner.inputElements + 64)
        feature = .allocate(capacity: batchSize * EfficientNetLite0.headChannels + 64)
        feature.initialize(repeating: 0, count: batchSize * EfficientNetLite0.headChannels + 64)
        logits = .allocate(capacity: batchSize * EfficientNetLite0.classes + 64)
        logits.initialize(repeating: 0, count: batchSize * EfficientNetLite0.classes + 64)
        headMap = .allocate(capacity: batchSize * NetworkRunner.headMapElements + 64)
        headMap.initialize(repeating: 0, count: batchSize * NetworkRunner.headMapElements + 64)
        var externals = [
            xnn_external_value(id: EfficientNetLiteGraph.inputID, data: UnsafeMutableRawPointer(input)),
            xnn_external_value(id: EfficientNetLiteGraph.featureID, data: UnsafeMutableRawPointer(feature)),
            xnn_external_value(id: EfficientNetLiteGraph.logitsID, data: UnsafeMutableRawPointer(logits)),
            xnn_external_value(id: EfficientNetLiteGraph.headMapID, data: UnsafeMutableRawPointer(headMap)),
        ]
        let setup = xnn_setup_runtime(runtime, externals.count, &externals)
        guard setup == xnn_status_success else {
            xnn_delete_runtime(runtime)
            if let pool { pthreadpool_destroy(pool) }
            input.deallocate(); feature.deallocate(); logits.deallocate(); headMap.deallocate()
            throw NetworkError("xnn_setup_runtime failed (xnn_status \(setup.rawValue))")
        }
    }

    deinit {
        xnn_delete_runtime(runtime)
        if let pool { pthreadpool_destroy(pool) }
        input.deallocate(); feature.deallocate(); logits.deallocate(); headMap.deallocate()
    }

    /// Runs `count` (1...batchSize) images: `input` holds count x 224x224x3 floats, NHWC.
    public func run(input source: UnsafePointer<Float>, count: Int) throws(NetworkError) -> [NetworkOutput] {
        try run(count: count) { $0.update(from: source, count: count * NetworkRunner.inputElements) }
    }

    /// Runs `count` images written by `fill` straight into the runtime's input buffer
    /// (count x 224x224x3 floats, NHWC); saves a copy.
    public func run(count: Int, fill: (UnsafeMutablePointer<Float>) throws -> Void) throws(NetworkError) -> [NetworkOutput] {
        guard count >= 1 && count <= batchSize else { throw NetworkError("batch of \(count) images, runner holds 1...\(batchSize)") }
        lock.lock()
        defer { lock.unlock() }
        do { try fill(input) } catch { throw NetworkError("filling the input failed: \(error)") }
        if count < batchSize {
            (input + count * NetworkRunner.inputElements).update(repeating: 0, count: (batchSize - count) * NetworkRunner.inputElements)
        }
        let status = xnn_invoke_runtime(runtime)
        guard status == xnn_status_success else { throw NetworkError("xnn_invoke_runtime failed (xnn_status \(status.rawValue))") }
        let f = EfficientNetLite0.headChannels, l = EfficientNetLite0.classes, m = NetworkRunner.headMapElements
        return (0..<count).map { i in
            NetworkOutput(feature: Array(UnsafeBufferPointer(start: feature + i * f, count: f)),
                          logits: Array(UnsafeBufferPointer(start: logits + i * l, count: l)),
                          headMap: Array(UnsafeBufferPointer(start: headMap + i * m, count: m)))
        }
    }
}
