// `lookalike dedupe`, `export` and `info`: thin wrappers over the library's duplicate finder,
// exporter and catalogue summary.
import ArgumentParser
import Foundation
import LookalikeLibrary

struct DedupeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dedupe",
        abstract: "List groups of exact duplicates (same bytes) and near-duplicates (similar embeddings).",
        discussion: """
            A pair of images is a near-duplicate when the cosine distance of their embeddings is under \
            the threshold. The default \(Deduplicator.defaultThreshold) was measured on transformed \
            copies of real photos (re-encode, resize, crop, brightness) mixed with unrelated photos; \
            see README "Duplicates" for precision and recall. Lower it for stricter groups.
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

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show what the library holds.")

    @OptionGroup var database: DatabaseOption

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

    func run() throws {
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
        if json {
            print(try Console.json(info))
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
    }
}
