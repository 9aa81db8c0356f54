// `lookalike-bench engine` (used by `make bench`): images/s of the network alone (synthetic input)
// and of decode + embed end to end over a list of image files, as one JSON line for the script
// that runs the reference peer on the same files in the same run.
import ArgumentParser
import Dispatch
import Foundation
import LookalikeCommandLine
import LookalikeEngine

struct BenchEngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "Benchmark the embedding engine.")

    @Option(help: "File with one image path per line (end-to-end part).") var list: String
    @Option(help: "Threads (both parts).") var threads: Int = 2
    @Option(help: "Images per network-only measurement.") var networkImages: Int = 1024
    @Option(help: "Network-only measurements per arrangement (the median is reported).") var repeats: Int = 3
    @Option(help: "Also time these batch sizes (per-core runtimes), e.g. 2,4,8.") var batches: String = ""

    struct Report: Encodable {
        let network_img_s: Double
        let network_arrangement: String
        let network_alternatives: [String: Double]
        let e2e_img_s: Double
        let e2e_images: Int
        let e2e_failures: Int
        let e2e_seconds: Double
        /// Decode + resize + crop alone, one thread, mean ms per image over the list.
        let decode_ms: Double
    }

    func run() throws {
        let paths = try String(contentsOfFile: list, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        // The production arrangement (one single-threaded runtime per core) and the alternative
        // (one runtime using all threads), batch 1.
        // The median of a few runs: on a shared VM single runs vary by 10-20 %.
        func median(batch: Int, threadsPerWorker: Int, workers: Int) throws -> EngineBenchmark.Measurement {
            let runs = try (0..<max(1, repeats)).map { _ in
                try EngineBenchmark.networkImagesPerSecond(batch: batch, threadsPerWorker: threadsPerWorker,
                                                           workers: workers, images: networkImages)
            }
            return runs.sorted { $0.imagesPerSecond < $1.imagesPerSecond }[runs.count / 2]
        }
        let perCore = try median(batch: 1, threadsPerWorker: 1, workers: threads)
        let shared = try median(batch: 1, threadsPerWorker: threads, workers: 1)
        var alternatives = [perCore, shared]
        for b in batches.split(separator: ",").compactMap({ Int($0) }) where b > 1 {
            alternatives.append(try median(batch: b, threadsPerWorker: 1, workers: threads))
        }
        let best = perCore.imagesPerSecond >= shared.imagesPerSecond ? perCore : shared
        let e2e = try EngineBenchmark.endToEnd(paths: paths, threads: threads)
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        for path in paths { _ = try? ImageDecoder.decode(path: path) }
        let decodeMs = Double(DispatchTime.now().uptimeNanoseconds - decodeStart) / 1e6 / Double(max(1, paths.count))
        let report = Report(
            network_img_s: best.imagesPerSecond, network_arrangement: best.label,
            network_alternatives: Dictionary(alternatives.map { ($0.label, $0.imagesPerSecond) }, uniquingKeysWith: { a, _ in a }),
            e2e_img_s: e2e.imagesPerSecond, e2e_images: e2e.images, e2e_failures: e2e.failures, e2e_seconds: e2e.seconds,
            decode_ms: decodeMs)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}
