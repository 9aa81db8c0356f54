// `lookalike-bench ann` (used by scripts/bench_ann.py and `make bench`): measures the approximate
// methods against exact search. Steps, each one process so memory is measured where it belongs:
//   prepare  N vectors tiled from real embeddings + Gaussian noise (as bench-search), the queries
//            (other perturbed copies), exact ground truth and exact timing -> a folder
//   build    one method's index over the prepared vectors -> its file (build/train time)
//   run      loads the vectors (memory-mapped, as a library snapshot) and the index file, then
//            times single queries and batches for each setting: recall@10, ms, RSS per image
//   hamming  the popcount scan alone (codes + top-C selection), for the faiss comparison
//   caltech  every method on a real library: recall@10 vs exact, P@20, time, the thesis protocol,
//            supervised codes trained on a train list and judged on a test list
// Prints JSON lines.
import ArgumentParser
import CKernels
import Dispatch
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct BenchANNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ann", abstract: "Benchmark the approximate methods against exact search.")

    @Argument(help: "prepare | build | run | hamming | caltech") var step: String
    @Option(help: "Working folder (prepare/build/run).") var dir: String = "out/ann"
    @Option(help: "Features .npy to tile (prepare).") var feats: String?
    @Option(help: "Vectors (prepare, hamming).") var n: Int = 1_000_000
    @Option(help: "Queries.") var queries: Int = 1000
    @Option(help: "Noise sd (prepare).") var noise: Float = 0.01
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Index descriptor (build, run).") var method: String = "hash:256"
    @Option(help: "Candidate counts to try (run; comma-separated).") var candidates: String = ""
    @Option(help: "efSearch values to try (run).") var ef: String = ""
    @Option(help: "Probe counts to try (run).") var probes: String = ""
    @Option(help: "Also time the whole query set as one batch (run).") var batch = true
    @Option(help: "Bits (hamming).") var bits: Int = 64
    @Option(help: "Results per query (hamming: candidates).") var k: Int = 10
    @Option(help: "Library (caltech).") var db: String = "out/caltech.db"
    @Option(help: "Train list (caltech, supervised codes).") var trainList: String?
    @Option(help: "Test list (caltech, supervised codes).") var testList: String?
    @Option(help: "Supervised epochs (caltech).") var epochs: Int = 40

    func run() throws {
        switch step {
        case "prepare": try prepare()
        case "build": try build()
        case "run": try runQueries()
        case "hamming": try hamming()
        case "caltech": try caltech()
        default: throw ValidationError("unknown step '\(step)' (prepare, build, run, hamming, caltech)")
        }
    }

    static func emit<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        if let data = try? encoder.encode(value) { FileHandle.standardOutput.write(data + Data("\n".utf8)) }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    /// Resident memory of this process from /proc/self/status (total, anonymous, file-backed), bytes.
    static func rss() -> (total: Int, anon: Int, file: Int) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "0") ?? 0) * 1024
        }
        return (field("VmRSS"), field("RssAnon"), field("RssFile"))
    }

    static func recall(_ found: [[Int64]], _ truth: [[Int64]], k: Int) -> Double {
        var hits = 0
        for (f, t) in zip(found, truth) { hits += Set(f.prefix(k)).intersection(t.prefix(k)).count }
        return Double(hits) / Double(max(1, truth.count * k))
    }

    static func writeNpy(_ values: [Float], rows: Int, columns: Int, to url: URL) throws {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: url)
    }

    // MARK: prepare

    struct Prepared: Codable {
        let n: Int, dim: Int, queries: Int, source: String
        let exact_ms_median: Double, exact_batch_qps: Double
        let rows_offset: Int
        let generate_s: Double
    }

    func prepare() throws {
        let dim = 1280
        let folder = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let base = try feats.map { try Npy.readFloat32Matrix(path: $0) }
        let started = Self.now()
        let generator = VectorSampler(dim: dim, base: base, noise: noise)
        let exact = ExactIndex(dimension: dim)
        // Generated and added in slices so only one copy of the vectors is held.
        let slice = 100_000
        var start = 0
        while start < n {
            let end = min(n, start + slice)
            try exact.add(ids: (Int64(start)..<Int64(end)).map { $0 }, vectors: generator.sample(rows: start..<end, seed: seed))
            start = end
        }
        var queryVectors: [Float] = []
        for i in 0..<queries {
            var rng = SplitMix64(seed: seed &+ 99 &+ UInt64(i))
            let row = Int(rng.next() % UInt64(n))
            queryVectors += generator.sample(rows: row..<row + 1, seed: seed &+ 7 &+ UInt64(i))
        }
        let generated = Self.now() - started
        try exact.write(to: folder.appendingPathComponent("vectors.lkix"))
        try Self.writeNpy(queryVectors, rows: queries, columns: dim, to: folder.appendingPathComponent("queries.npy"))
        // Ground truth: exact top-10 (one batch), then single-query timing on the first 100.
        let t0 = Self.now()
        let truth = try exact.search(batch: queryVectors, k: 10, parameters: SearchParameters())
        let batchSeconds = Self.now() - t0
        try JSONEncoder().encode(truth.map { $0.map(\.id) }).write(to: folder.appendingPathComponent("truth.json"))
        var times: [Double] = []
        for qi in 0..<min(100, queries) {
            let q = Array(queryVectors[(qi * dim)..<((qi + 1) * dim)])
            let t = Self.now()
            _ = try exact.search(q, k: 10)
            times.append((Self.now() - t) * 1000)
        }
        // Where the Float32 rows start in vectors.lkix (for numpy.memmap in the faiss script).
        let size = (try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("vectors.lkix").path)[.size] as? Int) ?? 0
        let payload = n * 8 + n * dim * 4
        let idBytes = (n * 8 + 63) / 64 * 64
        let rowsOffset = size - 32 - (payload - n * 8 + idBytes) + idBytes
        let report = Prepared(n: n, dim: dim, queries: queries,
                              source: base == nil ? "random" : "tiled \(feats ?? "") noise \(noise)",
                              exact_ms_median: Self.median(times), exact_batch_qps: Double(queries) / batchSeconds,
                              rows_offset: rowsOffset, generate_s: generated)
        try JSONEncoder().encode(report).write(to: folder.appendingPathComponent("prepared.json"))
        Self.emit(report)
    }

    func openStore() throws -> (VectorStore, Prepared, [[Int64]], [Float]) {
        let folder = URL(fileURLWithPath: dir)
        let prepared = try JSONDecoder().decode(Prepared.self, from: Data(contentsOf: folder.appendingPathComponent("prepared.json")))
        guard let exact = try readIndex(url: folder.appendingPathComponent("vectors.lkix")) as? ExactIndex else {
            throw ValidationError("\(dir)/vectors.lkix is not an exact index")
        }
        let truth = try JSONDecoder().decode([[Int64]].self, from: Data(contentsOf: folder.appendingPathComponent("truth.json")))
        let q = try Npy.readFloat32Matrix(path: folder.appendingPathComponent("queries.npy").path)
        return (exact.store, prepared, truth, q.values)
    }

    func indexURL(_ descriptor: IndexDescriptor) -> URL {
        URL(fileURLWithPath: dir).appendingPathComponent(descriptor.name.replacingOccurrences(of: ":", with: "-") + ".lkix")
    }

    // MARK: build

    struct Built: Encodable {
        let method: String, n: Int, build_s: Double, train_s: Double, file_mib: Double, structure_bytes_per_image: Double
    }

    func build() throws {
        let (store, _, _, _) = try openStore()
        let descriptor = try IndexDescriptor(parsing: method)
        let index = try IndexFactory.make(descriptor, dimension: store.dimension, store: store)
        let started = Self.now()
        var trainSeconds = 0.0
        if !index.isTrained {
            // A seeded sample of 100k vectors is plenty for PCA + ITQ (the covariance is stable).
            var sample: [Float] = []
            let ids = store.liveIds
            var rng = SplitMix64(seed: 5)
            let step = max(1, ids.count / 100_000)
            for i in Swift.stride(from: Int(rng.next() % UInt64(step)), to: ids.count, by: step) {
                if let v = store.reconstruct(ids[i]) { sample += v }
            }
            try index.train(sample)
            trainSeconds = Self.now() - started
        }
        try store.forEachBatch(20_000) { ids, rows in try index.add(ids: ids, vectors: rows) }
        let seconds = Self.now() - started
        let url = indexURL(descriptor)
        try index.write(to: url)
        let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        Self.emit(Built(method: descriptor.name, n: index.count, build_s: seconds, train_s: trainSeconds,
                        file_mib: Double(size) / 1_048_576,
                        structure_bytes_per_image: Double(index.statistics.structureBytes) / Double(max(1, index.count))))
    }

    // MARK: run

    struct Ran: Encodable {
        let method: String, setting: String, n: Int
        let recall_at_10: Double, ms_median: Double, ms_mean: Double, speedup_vs_exact: Double
        let batch_qps: Double?
        let rss_mib: Double, rss_anon_mib: Double, rss_file_mib: Double, rss_bytes_per_image: Double
        let load_s: Double
        let rss_after_load_mib: Double
    }

    func runQueries() throws {
        let t0 = Self.now()
        let (store, prepared, truth, queryVectors) = try openStore()
        let descriptor = try IndexDescriptor(parsing: method)
        let index: any VectorIndex = descriptor.method == ExactIndex.methodName
            ? ExactIndex(store: store, descriptor: descriptor) : try readIndex(url: indexURL(descriptor), store: store)
        let loadSeconds = Self.now() - t0
        let afterLoad = Double(Self.rss().total) / 1_048_576
        let d = store.dimension, m = truth.count
        func ints(_ s: String) -> [Int?] { s.isEmpty ? [nil] : s.split(separator: ",").compactMap { Int($0) } }
        var settings: [(String, SearchParameters)] = []
        for c in ints(candidates) {
            for e in ints(ef) {
                for p in ints(probes) {
                    let name = [c.map { "candidates=\($0)" }, e.map { "efSearch=\($0)" }, p.map { "probes=\($0)" }].compactMap { $0 }.joined(separator: " ")
                    settings.append((name.isEmpty ? "default" : name, SearchParameters(candidates: c, efSearch: e, probes: p)))
                }
            }
        }
        for (name, parameters) in settings {
            // Single queries (one thread each, as an interactive search runs), all of them timed.
            var times: [Double] = []
            var found: [[Int64]] = []
            for qi in 0..<m {
                let q = Array(queryVectors[(qi * d)..<((qi + 1) * d)])
                let t = Self.now()
                let r = try index.search(q, k: 10, parameters: parameters)
                times.append((Self.now() - t) * 1000)
                found.append(r.map(\.id))
            }
            var qps: Double?
            if batch {
                // Best of three: one batch of 1,000 fast queries lasts tens of milliseconds, so a
                // single timing is mostly noise (scripts/bench_ann.py times faiss the same way).
                for _ in 0..<3 {
                    let t = Self.now()
                    _ = try index.search(batch: queryVectors, k: 10, parameters: parameters)
                    qps = max(qps ?? 0, Double(m) / (Self.now() - t))
                }
            }
            let mem = Self.rss()
            let med = Self.median(times)
            Self.emit(Ran(method: descriptor.name, setting: name, n: store.count, recall_at_10: Self.recall(found, truth, k: 10),
                          ms_median: med, ms_mean: times.reduce(0, +) / Double(max(1, m)),
                          speedup_vs_exact: prepared.exact_ms_median / max(med, 1e-9), batch_qps: qps,
                          rss_mib: Double(mem.total) / 1_048_576, rss_anon_mib: Double(mem.anon) / 1_048_576,
                          rss_file_mib: Double(mem.file) / 1_048_576, rss_bytes_per_image: Double(mem.total) / Double(store.count),
                          load_s: loadSeconds, rss_after_load_mib: afterLoad))
        }
    }

    // MARK: hamming

    struct HammingReport: Encodable {
        let n: Int, bits: Int, candidates: Int, queries: Int, kernel: String
        let scan_ms_median: Double, scan_select_ms_median: Double
    }

    func hamming() throws {
        let words = (bits + 63) / 64
        var rng = SplitMix64(seed: seed &+ 3)
        let codes = (0..<(n * words)).map { _ in rng.next() }
        let queryCodes = (0..<(queries * words)).map { _ in rng.next() }
        var distances = [UInt16](repeating: 0, count: n)
        var picked = [UInt32](repeating: 0, count: max(1, k))
        var scan: [Double] = [], total: [Double] = []
        codes.withUnsafeBufferPointer { c in
            queryCodes.withUnsafeBufferPointer { q in
                distances.withUnsafeMutableBufferPointer { dd in
                    picked.withUnsafeMutableBufferPointer { pp in
                        guard let cp = c.baseAddress, let qp = q.baseAddress, let dp = dd.baseAddress, let op = pp.baseAddress else { return }
                        for qi in 0..<queries {
                            let t = Self.now()
                            lk_hamming(qp + qi * words, cp, n, words, dp)
                            let t1 = Self.now()
                            _ = lk_hamming_select(dp, n, UInt32(bits), -1, k, op)
                            let t2 = Self.now()
                            scan.append((t1 - t) * 1000)
                            total.append((t2 - t) * 1000)
                        }
                    }
                }
            }
        }
        Self.emit(HammingReport(n: n, bits: bits, candidates: k, queries: queries, kernel: String(cString: lk_hamming_kernel()),
                                scan_ms_median: Self.median(scan), scan_select_ms_median: Self.median(total)))
    }
}
