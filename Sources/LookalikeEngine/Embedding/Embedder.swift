// Embedder owns "image -> embedding": it loads the weights (via ModelLocator by default), keeps one
// single-threaded batch-1 XNNPACK runner per worker, turns network outputs into an `Embedding`
// (feature, L2-normalised vector, logits, softmax top-5 with the labels from the weights file) and
// runs the pipelined batch API `embedFiles`: `threads` workers each decode an image and run it
// through their own runner, so decoding of one image overlaps the network on another and both cores
// stay busy (measured fastest on 2 cores, see EngineBenchmark); at most `window` results are held in
// memory and they are delivered in input order.
import Dispatch
import Foundation

public struct Label: Sendable, Equatable {
    public let classId: Int
    public let name: String
    public let probability: Float
}

public struct Embedding: Sendable {
    public let feature: [Float]  // 1280-d average-pooled feature (non-negative)
    public let vector: [Float]   // the descriptor's vector, L2-normalised
    public let logits: [Float]   // 1000
    public let top5: [Label]
}

public struct ModelInfo: Sendable, Equatable {
    public let id: String        // "efficientnet-lite0"
    public let checksum: String  // sha256 of the weights' data section
    public let dimension: Int    // 1280
    public init(id: String, checksum: String, dimension: Int) {
        self.id = id
        self.checksum = checksum
        self.dimension = dimension
    }
}

public final class Embedder: Sendable {
    public let model: ModelInfo
    public let labels: [String]
    public let threads: Int
    /// The view and pooling that make `vector` (the model id names it).
    public let descriptor: Descriptor
    private let runners: RunnerPool
    /// Admits at most `threads` async embeddings at once; the rest wait in order (not on a thread).
    private let admission: AsyncSemaphore

    /// Loads the weights (nil: `ModelLocator.defaultWeightsURL()`) and prepares `threads` workers.
    /// `descriptor`: a library's own (`Descriptor(modelID:)` of its recorded model) when one exists.
    public init(weightsURL: URL? = nil, threads: Int = 2, descriptor: Descriptor = .standard) throws {
        let url = try weightsURL ?? ModelLocator.defaultWeightsURL()
        let weights = try WeightsFile.load(url: url)
        let graph = try EfficientNetLiteGraph(weights: weights)
        let n = max(1, threads)
        self.threads = n
        self.descriptor = descriptor
        labels = weights.labels
        model = ModelInfo(id: descriptor.modelID(weights: weights.modelName), checksum: weights.checksum, dimension: EfficientNetLite0.headChannels)
        runners = RunnerPool(try (0..<n).map { _ in try NetworkRunner(graph: graph, batchSize: 1, threads: 1) })
        admission = AsyncSemaphore(permits: n)
    }

    // MARK: async API (for servers and async callers)

    /// Decodes and embeds a file without blocking the caller's thread: the work runs on a Dispatch
    /// worker once one of the `threads` slots is free; waiting callers queue in order.
    public func embed(path: String) async throws -> (DecodedImage, Embedding) {
        try await offload { try self.embed(path: path) }
    }

    /// Decodes and embeds an in-memory image (an upload or a download) off the caller's thread.
    public func embed(data: [UInt8], name: String) async throws -> (DecodedImage, Embedding) {
        try await offload {
            let image = try ImageDecoder.decode(data: data, name: name, geometry: self.descriptor.geometry)
            return (image, try self.embed(image))
        }
    }

    /// Embeds a region of an in-memory image (a box drawn on the query); nil crop: the whole image.
    public func embed(data: [UInt8], name: String, crop: CropBox?) async throws -> (DecodedImage, Embedding) {
        try await offload {
            let image = try ImageDecoder.decode(data: data, name: name, crop: crop, geometry: self.descriptor.geometry)
            return (image, try self.embed(image))
        }
    }

    /// Embeds a region of an image file; nil crop: `embed(path:)`.
    public func embed(path: String, crop: CropBox?) async throws -> (DecodedImage, Embedding) {
        guard let crop else { return try await embed(path: path) }
        return try await offload {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DecodeError(path: path, reason: .notFound)
            }
            let image = try ImageDecoder.decode(data: [UInt8](data), name: path, crop: crop, geometry: self.descriptor.geometry)
            return (image, try self.embed(image))
        }
    }

    private func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        await admission.acquire()
        defer { Task { await admission.release() } }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    public func embed(_ image: DecodedImage) throws -> Embedding {
        try embed(pixels: image.pixels)
    }

    /// Embeds 224x224x3 RGB8 pixels (HWC), i.e. the decoder's output geometry.
    public func embed(pixels: [UInt8]) throws -> Embedding {
        guard pixels.count == Preprocessing.pixelCount else {
            throw NetworkError("expected \(Preprocessing.pixelCount) pixel bytes (224x224 RGB), got \(pixels.count)")
        }
        let runner = runners.take()
        defer { runners.give(runner) }
        let out = try runner.run(count: 1) { Preprocessing.tensor(from: pixels, into: $0) }
        return makeEmbedding(out[0])
    }

    public func embed(path: String) throws -> (DecodedImage, Embedding) {
        let image = try ImageDecoder.decode(path: path, geometry: descriptor.geometry)
        return (image, try embed(image))
    }

    /// Pipelined: decoding of the next images overlaps the network; bounded memory; results in input
    /// order. Blocks until every path has been delivered to `onResult` (index, path, result).
    public func embedFiles(_ paths: [String], onResult: @Sendable (Int, String, Result<(DecodedImage, Embedding), Error>) -> Void) {
        if paths.isEmpty { return }
        let state = OrderedWindow<Result<(DecodedImage, Embedding), Error>>(count: paths.count, window: 4 * threads)
        let workers = min(threads, paths.count)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let runner = runners.take()
            defer { runners.give(runner) }
            while let i = state.claim() {
                let result: Result<(DecodedImage, Embedding), Error> = Result {
                    let image = try ImageDecoder.decode(path: paths[i], geometry: descriptor.geometry)
                    let out = try runner.run(count: 1) { Preprocessing.tensor(from: image.pixels, into: $0) }
                    return (image, makeEmbedding(out[0]))
                }
                state.complete(i, result) { index, r in onResult(index, paths[index], r) }
            }
        }
    }

    /// Decodes an in-memory image into this embedder's input geometry (for callers that keep the
    /// decoded image, like the robustness benchmark).
    public func decode(data: [UInt8], name: String) throws -> DecodedImage {
        try ImageDecoder.decode(data: data, name: name, geometry: descriptor.geometry)
    }

    func makeEmbedding(_ out: NetworkOutput) -> Embedding {
        let vector = Descriptor.unit(descriptor.vector(from: out))
        let maxLogit = Double(out.logits.max() ?? 0)
        var probs = out.logits.map { exp(Double($0) - maxLogit) }
        let sum = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= sum }
        // Top 5 by one pass of insertion into a 5-slot list (no sort of all 1000 classes).
        var order: [Int] = []
        for i in probs.indices {
            var at = order.count
            while at > 0 && probs[order[at - 1]] < probs[i] { at -= 1 }
            if at < 5 {
                order.insert(i, at: at)
                if order.count > 5 { order.removeLast() }
            }
        }
        let top5 = order.map { Label(classId: $0, name: $0 < labels.count ? labels[$0] : "class \($0)", probability: Float(probs[$0])) }
        return Embedding(feature: out.feature, vector: vector, logits: out.logits, top5: top5)
    }
}

/// A counting semaphore for async code: `acquire` suspends (never blocks a thread) until a permit
/// is free; waiters are served first come, first served.
actor AsyncSemaphore {
    private var permits: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(permits: Int) { self.permits = permits }

    func acquire() async {
        if permits > 0 {
            permits -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { permits += 1 } else { waiters.removeFirst().resume() }
    }
}

/// Runners handed to one thread at a time (blocking when all are in use).
final class RunnerPool: @unchecked Sendable {
    private var free: [NetworkRunner]
    private let cond = NSCondition()
    init(_ runners: [NetworkRunner]) { free = runners }
    func take() -> NetworkRunner {
        cond.lock(); defer { cond.unlock() }
        while free.isEmpty { cond.wait() }
        return free.removeLast()
    }
    func give(_ r: NetworkRunner) {
        cond.lock(); free.append(r); cond.signal(); cond.unlock()
    }
}

/// Work distribution with a bounded reorder window: workers claim indices in order but never more
/// than `window` ahead of the last delivered one; completed results are delivered strictly in index
/// order, one deliverer at a time, by whichever worker completed the next expected index.
final class OrderedWindow<R>: @unchecked Sendable {
    private let count: Int, window: Int
    private var next = 0, delivered = 0
    private var pending: [Int: R] = [:]
    private let cond = NSCondition()
    private let deliveryLock = NSLock()

    init(count: Int, window: Int) { self.count = count; self.window = max(1, window) }

    func claim() -> Int? {
        cond.lock(); defer { cond.unlock() }
        while next < count && next - delivered >= window { cond.wait() }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }

    func complete(_ index: Int, _ result: R, deliver: (Int, R) -> Void) {
        cond.lock(); pending[index] = result; cond.unlock()
        deliveryLock.lock(); defer { deliveryLock.unlock() }
        while true {
            cond.lock()
            guard let r = pending.removeValue(forKey: delivered) else { cond.unlock(); return }
            let i = delivered
            cond.unlock()
            deliver(i, r)
            cond.lock(); delivered += 1; cond.broadcast(); cond.unlock()
        }
    }
}
