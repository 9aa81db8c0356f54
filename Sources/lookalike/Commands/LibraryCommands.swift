// `lookalike dedupe`, `export` and `info`: thin wrappers over the library's duplicate finder,
// exporter and catalogue summary.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct DedupeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dedupe",
        abstract: "List groups of exact duplicates (same bytes) and near-duplicates (similar embeddings).",
        discussion: """
            A pair of images is a near-duplicate when the cosine distance of their embeddings is under \
            the threshold. The default \(Deduplicator.defaultThreshold) was measured on transformed \
            copies of real photos (re-encode, resize, crop, brightness) mixed with unrelated photos; \
            see docs/retrieval-quality.md "Duplicates" for precision and recall. Lower it for stricter groups.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Cosine distance (1 - cosine similarity) under which two images are near-duplicates.")
    var threshold: Float = Deduplicator.defaultThreshold

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let groups = try Deduplicator.groups(catalogue: catalogue, threshold: threshold)
        if json {
            print(try Console.json(groups))
            return
        }
        for (i, group) in groups.enumerated() {
            let detail = group.kind == "exact" ? "same bytes" : "max distance \(format(Double(group.maxDistance), 3))"
            print("group \(i + 1): \(group.kind), \(group.paths.count) images (\(detail))")
            for path in group.paths { print("  \(path)") }
        }
        let exact = groups.filter { $0.kind == "exact" }.count
        print("\(exact) exact and \(groups.count - exact) near-duplicate groups (threshold \(threshold))")
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export embeddings.npy (float32 [N, D]), paths.txt and labels.txt.")

    @OptionGroup var database: DatabaseOption

    @Option(help: "Export format (npy).")
    var format: String = "npy"

    @Option(help: "Output folder.")
    var out: String

    func validate() throws {
        guard format == "npy" else { throw ValidationError("unknown format '\(format)'; supported: npy") }
    }

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let rows = try NpyExporter.export(catalogue: catalogue, to: URL(fileURLWithPath: out))
        print("exported \(rows) embeddings to \(out)/embeddings.npy, paths.txt, labels.txt")
    }
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show what the library holds and whether its derived files are current.")

    @OptionGroup var database: DatabaseOption

    @Option(help: "Describe a vector store instead of the local library: milvus://HOST:PORT/COLLECTION.")
    var store: String?

    @Option(help: "Show one image of the library instead: its paths, size, label, tags and photo facts.")
    var path: String?

    @Flag(help: "Print JSON.")
    var json = false

    struct ImageInfo: Encodable {
        let id: Int64
        let paths: [String]
        let label: String
        let width: Int
        let height: Int
        let bytes: Int64
        let tags: String
        let captured_at: String?
        let camera: String?
        let gps_latitude: Double?
        let gps_longitude: Double?
    }

    /// `info --json`: the catalogue's facts and its derived files.
    struct LibraryOutput: Encodable {
        let info: LibraryInfo
        let identity: String
        let derived: [DerivedFiles.Status]

        enum Keys: String, CodingKey { case identity, derived }
        func encode(to encoder: Encoder) throws {
            try info.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(identity, forKey: .identity)
            try container.encode(derived, forKey: .derived)
        }
    }

    /// `info --store --json`.
    struct StoreOutput: Encodable {
        let store: String
        let images: Int
        let model: String?
        let modelChecksum: String?
        let dimension: Int?
        /// The re-ranking companion (`prepare rerank --store`): what it was built for and whether it covers the store now.
        let reranking: String?
        let rerankingCurrent: Bool
    }

    func run() async throws {
        if let store {
            try await describeStore(store)
            return
        }
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        if let path {
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            guard let id = try catalogue.imageId(path: absolute), let image = try catalogue.image(id: id) else {
                throw Failure(message: "\(path) is not in the library \(database.db)")
            }
            let summary = try catalogue.summaries(imageIds: [id])[id]
            let camera = [image.cameraMake, image.cameraModel].compactMap { $0 }.joined(separator: " ")
            let out = ImageInfo(id: id, paths: try catalogue.paths(imageId: id), label: summary?.label ?? "",
                                width: image.width, height: image.height, bytes: image.byteSize, tags: image.tags,
                                captured_at: image.capturedAt, camera: camera.isEmpty ? nil : camera,
                                gps_latitude: image.gpsLatitude, gps_longitude: image.gpsLongitude)
            if json { print(try Console.json(out)); return }
            print("image:     \(out.id) (\(out.width)x\(out.height), \(out.bytes) bytes), label \(out.label)")
            for p in out.paths { print("path:      \(p)") }
            print("tags:      \(out.tags)")
            print("taken:     \(out.captured_at ?? "unknown")")
            print("camera:    \(out.camera ?? "unknown")")
            if let lat = out.gps_latitude, let lon = out.gps_longitude {
                print("position:  \(String(format: "%.6f", lat)), \(String(format: "%.6f", lon))")
            }
            return
        }
        let info = try catalogue.info()
        let derived = try DerivedFiles.status(catalogue: catalogue)
        if json {
            print(try Console.json(LibraryOutput(info: info, identity: catalogue.identity, derived: derived)))
            return
        }
        print("library:   \(info.databasePath) (\(format(Double(info.databaseBytes) / 1_048_576)) MB)")
        print("images:    \(info.images) (\(info.files) files, \(info.labels) labels)")
        print("failures:  \(info.failures)")
        print("model:     \(info.model ?? "none") \(info.modelChecksum.map { "(weights \($0.prefix(12)))" } ?? "")")
        if let run = info.lastRun {
            let when = ISO8601DateFormatter().string(from: run.finishedAt ?? run.startedAt)
            print("last run:  \(when)\(run.finishedAt == nil ? " (interrupted)" : ""): indexed \(run.indexed), "
                  + "unchanged \(run.unchanged), updated \(run.updated), removed \(run.removed), failed \(run.failed)")
        }
        printDerived(derived)
    }

    /// The derived files in words: each one's state, and the command that brings stale ones up to date.
    func printDerived(_ derived: [DerivedFiles.Status]) {
        guard !derived.isEmpty else {
            print("derived:   none yet (`lookalike index` makes the snapshot and re-ranking files)")
            return
        }
        let stale = derived.filter { !$0.current }
        print("derived:   \(derived.count) files beside the library, \(stale.isEmpty ? "all current" : "\(stale.count) stale")")
        for file in derived {
            let size = format(Double(file.bytes) / 1_048_576)
            let making = file.reason?.hasPrefix("being made") == true || file.reason?.hasPrefix("not made yet") == true
            var state = file.current ? "current" : making ? file.reason ?? "" : "stale: \(file.reason ?? "?")"
            if file.current, let replayed = file.replayed_changes, replayed > 0 { state += " (\(replayed) changes replayed when opened)" }
            print("  \(file.name) (\(file.kind), \(size) MB): \(state)")
        }
        // Local features on their way are not stale: searches check candidates from their files meanwhile.
        let behind = stale.filter { !($0.reason?.hasPrefix("being made") ?? false) }
        if !behind.isEmpty {
            let commands = Set(behind.map { $0.built_by.components(separatedBy: " (").first ?? $0.built_by }).sorted()
            print("           searches do not use stale files (they build what they need in memory); "
                  + "\(commands.joined(separator: " or ")) --db \(database.db) brings them up to date")
        }
    }

    func describeStore(_ text: String) async throws {
        let address = try MilvusAddress(parsing: text)
        let library = try await StoreLibrary.open(address) { _ in
            throw Failure(message: "info does not embed images")
        }
        let images = try await library.store.count()
        let companion = try await library.reranking()
        let facts = library.modelFacts
        let out = StoreOutput(store: address.description, images: images, model: facts["model"], modelChecksum: facts["checksum"],
                              dimension: facts["dimension"].flatMap(Int.init), reranking: companion.map { $0.built.description },
                              rerankingCurrent: companion != nil)
        if json { print(try Console.json(out)); return }
        print("store:     \(out.store)")
        print("images:    \(out.images)")
        print("model:     \(out.model ?? "unknown") \(out.modelChecksum.map { "(weights \($0.prefix(12)))" } ?? "")")
        if let reranking = out.reranking {
            print("re-ranking companion: \(reranking), current (covers every image of the store)")
        } else {
            print("re-ranking companion: none current (searches re-rank with query expansion only); "
                  + "`lookalike prepare rerank --store \(address)` builds it")
        }
    }
}
