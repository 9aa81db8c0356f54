// EngineBenchmark owns the engine's timing entry points (no executable: `lookalike-bench engine`
// subcommand and scripts call them): network-only throughput for a given arrangement of runtimes
// (batch size, threads per runtime, parallel workers) on a fixed synthetic input, and end-to-end
// throughput (decode + preprocess + network) over image files, both through the production
// `Embedder.embedFiles` arrangement and through the alternative "one decode thread feeding one
// multi-threaded runtime" arrangement, so the choice made in Embedder can be re-checked on any machine.
import Foundation
import LookalikeCommandLine
import LookalikeEngine

public enum EngineBenchmark {
    public struct Measurement: Sendable, CustomStringConvertible {
        public let label: String
        public let images: Int
        public let failures: Int
        public let seconds: Double
        public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }
        public var description: String {
            String(format: "%@: %d images in %.2f s = %.1f img/s%@", label, images, seconds, imagesPerSecond,
                   failures > 0 ? " (\(failures) failed)" : "")
        }
    }

    /// Network only: `workers` runtimes in parallel, each `threadsPerWorker` threads and batch `batch`,
    /// running `images` images in total (after one warm-up run each) on a synthetic input.
    public static func networkImagesPerSecond(weightsURL: URL? = nil, batch: Int = 1, threadsPerWorker: Int = 2,
                                              workers: Int = 1, images: Int = 256) throws -> Measurement {
        let weights = try WeightsFile.load(url: try weightsURL ?? ModelLocator.defaultWeightsURL())
        let graph = try EfficientNetLiteGraph(weights: weights)
        let runners = try (0..<max(1, workers)).map { _ in
            try NetworkRunner(graph: graph, batchSize: batch, threads: threadsPerWorker)
        }
        var pixels = [UInt8](repeating: 0, count: Preprocessing.pixelCount)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        let input = pixels
        let fill: @Sendable (UnsafeMutablePointer<Float>, Int) -> Void = { p, n in
            for i in 0..<n { Preprocessing.tensor(from: input, into: p + i * NetworkRunner.inputElements) }
        }
        for r in runners { _ = try r.run(count: batch) { fill($0, batch) } }
        let perWorker = max(1, (images + batch * runners.count - 1) / (batch * runners.count))
        let errors = Locked<(any Error)?>(nil)
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: runners.count) { w in
            for _ in 0..<perWorker {
                do { _ = try runners[w].run(count: batch) { fill($0, batch) } } catch { errors.withLock { if $0 == nil { $0 = error } } }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let e = errors.value { throw e }
        return Measurement(label: "network batch \(batch), \(runners.count) worker(s) x \(threadsPerWorker) thread(s)",
                           images: perWorker * batch * runners.count, failures: 0, seconds: seconds)
    }

    /// End to end through `Embedder.embedFiles` (the production arrangement: `threads` workers, each
    /// decoding and running its own single-threaded runtime).
    public static func endToEnd(paths: [String], weightsURL: URL? = nil, threads: Int = 2) throws -> Measurement {
        let embedder = try Embedder(weightsURL: weightsURL, threads: threads)
        let counter = Locked(0)
        let start = DispatchTime.now().uptimeNanoseconds
        embedder.embedFiles(paths) { _, _, result in
            if case .failure = result { counter.withLock { $0 += 1 } }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Measurement(label: "end-to-end embedFiles, \(threads) worker(s) decode+network",
                           images: paths.count - counter.value, failures: counter.value, seconds: seconds)
    }

    /// End to end, alternative arrangement: one decode thread feeds (through a bounded queue) one
    /// `threads`-thread runtime of batch `batch`.
    public static func endToEndDecodeThread(paths: [String], weightsURL: URL? = nil, threads: Int = 2,
                                            batch: Int = 1) throws -> Measurement {
        let weights = try WeightsFile.load(url: try weightsURL ?? ModelLocator.defaultWeightsURL())
        let runner = try NetworkRunner(weights: weights, batchSize: batch, threads: threads)
        let queue = BoundedQueue<DecodedImage?>(capacity: 4 * batch)
        let start = DispatchTime.now().uptimeNanoseconds
        let decoder = Thread {
            for p in paths { queue.push(try? ImageDecoder.decode(path: p)) }
            queue.close()
        }
        decoder.start()
        var ok = 0, failed = 0
        var pending: [DecodedImage] = []
        func flush() throws {
            if pending.isEmpty { return }
            let items = pending
            _ = try runner.run(count: items.count) { p in
                for (i, img) in items.enumerated() { Preprocessing.tensor(from: img.pixels, into: p + i * NetworkRunner.inputElements) }
            }
            ok += items.count
            pending.removeAll(keepingCapacity: true)
        }
        while let item = queue.pop() {
            if let img = item { pending.append(img) } else { failed += 1 }
            if pending.count == batch { try flush() }
        }
        try flush()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Measurement(label: "end-to-end decode thread -> 1 runtime x \(threads) thread(s), batch \(batch)",
                           images: ok, failures: failed, seconds: seconds)
    }
}

/// A blocking FIFO holding at most `capacity` items; `pop` returns nil once closed and drained.
final class BoundedQueue<T>: @unchecked Sendable {
    private var items: [T] = []
    private var head = 0
    private var closed = false
    private let capacity: Int
    private let cond = NSCondition()
    init(capacity: Int) { self.capacity = max(1, capacity) }
    func push(_ item: T) {
        cond.lock()
        while items.count - head >= capacity { cond.wait() }
        items.append(item)
        cond.broadcast(); cond.unlock()
    }
    func close() { cond.lock(); closed = true; cond.broadcast(); cond.unlock() }
    func pop() -> T? {
        cond.lock(); defer { cond.unlock() }
        while items.count - head == 0 && !closed { cond.wait() }
        guard items.count - head > 0 else { return nil }
        let item = items[head]
        head += 1
        if head > 64 && head * 2 > items.count { items.removeFirst(head); head = 0 }
        cond.broadcast()
        return item
    }
}
