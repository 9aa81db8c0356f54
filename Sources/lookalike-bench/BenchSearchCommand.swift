// `lookalike-bench search` (used by `make bench`): exact top-10 search over N synthetic vectors,
// generated like the peer's `peer.py bench-search` (random unit vectors, or rows of a features .npy
// tiled and perturbed), timed per single query; then the same with Float16 storage, reporting its
// memory and recall@10 against Float32. Prints one JSON line for the benchmark script.
import ArgumentParser
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct BenchSearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Benchmark exact search on synthetic vectors.")

    @Option(help: "Number of vectors.") var n: Int = 1_000_000
    @Option(help: "Number of queries.") var queries: Int = 100
    @Option(help: "Results per query.") var k: Int = 10
    @Option(help: "Features .npy (float32 [M, 1280]) to tile and perturb instead of random vectors.") var feats: String?
    @Option(help: "Noise standard deviation for tiled features.") var noise: Float = 0.01
    @Option(help: "Random seed.") var seed: UInt64 = 0

    struct Report: Encodable {
        let n: Int, dim: Int, queries: Int, source: String
        let f32_ms_median: Double, f32_ms_mean: Double, f32_mib: Double
        let f16_ms_median: Double, f16_ms_mean: Double, f16_mib: Double, f16_recall_at_k: Double
        let build_s: Double
    }

    func run() throws {
        let dim = 1280
        let base = try feats.map { try Npy.readFloat32Matrix(path: $0) }
        if let base, base.columns != dim { throw ValidationError("\(feats ?? ""): expected \(dim) columns, got \(base.columns)") }
        let started = Date()
        let generator = VectorSampler(dim: dim, base: base, noise: noise)
        let data = generator.sample(rows: 0..<n, seed: seed)
        let queryRows = (0..<queries).map { i -> Int in
            var rng = SplitMix64(seed: seed &+ 99 &+ UInt64(i))
            return Int(rng.next() % UInt64(n))
        }
        let queryVectors = queryRows.enumerated().map { i, row in generator.sample(rows: row..<row + 1, seed: seed &+ 7 &+ UInt64(i)) }
        let ids = (0..<Int64(n)).map { $0 }
        let f32 = ExactIndex(dimension: dim, precision: .float32)
        try f32.add(ids: ids, vectors: data)
        let f16 = ExactIndex(dimension: dim, precision: .float16)
        try f16.add(ids: ids, vectors: data)
        let buildSeconds = Date().timeIntervalSince(started)

        func time(_ index: ExactIndex) throws -> (median: Double, mean: Double, results: [[Int64]]) {
            for q in queryVectors.prefix(3) { _ = try index.search(q, k: k, metric: .cosine, excluding: []) }
            var times: [Double] = []
            var results: [[Int64]] = []
            for q in queryVectors {
                let t = DispatchTime.now().uptimeNanoseconds
                let r = try index.search(q, k: k, metric: .cosine, excluding: [])
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
                results.append(r.map { $0.id })
            }
            let sorted = times.sorted()
            return (sorted[sorted.count / 2], times.reduce(0, +) / Double(times.count), results)
        }
        let a = try time(f32)
        let b = try time(f16)
        var hits = 0
        for (x, y) in zip(a.results, b.results) { hits += Set(x).intersection(y).count }
        let recall = Double(hits) / Double(max(1, a.results.count * k))
        let report = Report(
            n: n, dim: dim, queries: queries,
            source: base == nil ? "random unit vectors" : "tiled+perturbed \(feats ?? "") (noise sd \(noise))",
            f32_ms_median: a.median, f32_ms_mean: a.mean, f32_mib: Double(f32.vectorBytes) / 1_048_576,
            f16_ms_median: b.median, f16_ms_mean: b.mean, f16_mib: Double(f16.vectorBytes) / 1_048_576,
            f16_recall_at_k: recall, build_s: buildSeconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

/// Synthetic unit vectors: standard normal, or a base row (row mod M) plus normal noise.
struct VectorSampler: Sendable {
    let dim: Int
    let base: (rows: Int, columns: Int, values: [Float])?
    let noise: Float

    func sample(rows: Range<Int>, seed: UInt64) -> [Float] {
        var out = [Float](repeating: 0, count: rows.count * dim)
        let chunk = 8192
        let chunks = (rows.count + chunk - 1) / chunk
        out.withUnsafeMutableBufferPointer { buffer in
            let box = UnsafeSendableBuffer(buffer: buffer)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                var rng = SplitMix64(seed: seed &* 0x1000_0000 &+ UInt64(c) &+ UInt64(rows.lowerBound))
                let lo = c * chunk, hi = Swift.min(rows.count, lo + chunk)
                guard let start = box.buffer.baseAddress else { return }
                for r in lo..<hi {
                    let row = start + r * dim
                    var i = 0
                    while i < dim {
                        // Box-Muller: two normals from two uniforms.
                        let u1 = Float(rng.next() >> 40 + 1) / Float(1 << 24)
                        let u2 = Float(rng.next() >> 40) / Float(1 << 24)
                        let radius = (-2 * logf(u1)).squareRoot()
                        row[i] = radius * cosf(2 * .pi * u2)
                        if i + 1 < dim { row[i + 1] = radius * sinf(2 * .pi * u2) }
                        i += 2
                    }
                    if let base {
                        let b = (rows.lowerBound + r) % base.rows
                        for j in 0..<dim { row[j] = base.values[b * dim + j] + noise * row[j] }
                    }
                    var norm: Float = 0
                    for j in 0..<dim { norm += row[j] * row[j] }
                    let inv = norm > 0 ? 1 / norm.squareRoot() : 0
                    for j in 0..<dim { row[j] *= inv }
                }
            }
        }
        return out
    }
}

struct UnsafeSendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Float>
}

/// Minimal reader of a 2-D little-endian float32 .npy file.
enum Npy {
    static func readFloat32Matrix(path: String) throws -> (rows: Int, columns: Int, values: [Float]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count > 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else {
            throw ValidationError("\(path): not a .npy file")
        }
        let major = data[data.startIndex + 6]
        let headerStart = major == 1 ? 10 : 12
        let headerLength = major == 1
            ? Int(data[data.startIndex + 8]) | Int(data[data.startIndex + 9]) << 8
            : Int(data[data.startIndex + 8]) | Int(data[data.startIndex + 9]) << 8 | Int(data[data.startIndex + 10]) << 16
        guard data.count >= headerStart + headerLength else { throw ValidationError("\(path): truncated .npy header") }
        let header = String(decoding: data[(data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)], as: UTF8.self)
        guard header.contains("'<f4'"), header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ValidationError("\(path): expected a C-order float32 matrix")
        }
        let dims = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 2 else { throw ValidationError("\(path): expected a 2-D array") }
        let body = data.dropFirst(headerStart + headerLength)
        guard body.count >= dims[0] * dims[1] * 4 else { throw ValidationError("\(path): truncated .npy data") }
        var values = [Float](repeating: 0, count: dims[0] * dims[1])
        _ = values.withUnsafeMutableBytes { body.copyBytes(to: $0) }
        return (dims[0], dims[1], values)
    }
}
