// The manifest of the files derived from a library (`<db>.indexes/`): what each is built from, the
// one rule that says whether it is current, and the step that builds it. Every derived file is an
// `IndexFile` whose header records its origin: the catalogue's identity (a random id given when the
// catalogue was created) and the change counter it reflects, plus the model, variant and settings
// it was made with. The one rule:
//
//   a file is used only when it was made for this catalogue (identity), from these inputs (model,
//   variant, settings), and the journal says what changed since its counter: a file kept by replay
//   (snapshots, approximate indexes) is current while the journal still reaches back to it; a file
//   made whole (diffusion graph, answer lists, visual words) is current when nothing it was made
//   from changed since.
//
// Anything else is rebuilt, never trusted. `lookalike index` is the only writer (`prepare index` and
// `prepare verify` create optional files, which `index` then keeps current); readers never write.
// `lookalike info` lists the files with this rule's verdict.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeVerification

public enum DerivedFiles {
    /// One kind of derived file.
    public struct Kind: Sendable {
        /// What it is, in words.
        public let name: String
        /// File-name prefix (`hnsw-32.lkix` and other approximate indexes: the empty prefix, last).
        public let prefix: String
        public let builtFrom: String
        /// true: kept by replaying the journal (current while the journal reaches back to it);
        /// false: made whole (current when nothing it was made from changed since).
        public let replayed: Bool
        /// The command that builds or brings it up to date.
        public let builtBy: String
    }

    public static let manifest: [Kind] = [
        Kind(name: "snapshot", prefix: "vectors-", builtFrom: "the catalogue's vectors of one variant (raw, or augmented for re-ranking)",
             replayed: true, builtBy: "lookalike index"),
        Kind(name: "diffusion graph", prefix: "diffusion-", builtFrom: "the mutual k-NN graph of the vectors searches re-rank",
             replayed: false, builtBy: "lookalike index"),
        Kind(name: "answer lists", prefix: "answers-", builtFrom: "every image's answer under the default re-ranking (graph + augmented vectors)",
             replayed: false, builtBy: "lookalike index"),
        Kind(name: "local features", prefix: "visual-words", builtFrom: "the images' SIFT keypoints as visual words and positions (verified searches)",
             replayed: false, builtBy: "lookalike index (in the background; lookalike prepare verify waits for it)"),
        Kind(name: "approximate index", prefix: "", builtFrom: "the raw vectors (and, for hash, the catalogue's trained model)",
             replayed: true, builtBy: "lookalike index (created by lookalike prepare index)"),
    ]

    /// The last `lookalike eval --html` report of the library, kept beside it for `serve` (GET
    /// /report): a report, not a derived file (nothing reads it to answer searches).
    public static func evaluationReport(for catalogue: Catalogue) -> URL {
        LibrarySnapshot.folder(for: catalogue).appendingPathComponent("evaluation-report.html")
    }

    /// A text made safe for a file name: `dba:15,alpha=5.0` -> `dba-15-alpha5.0` (no `:`, `,`, `=`, `/`).
    public static func fileName(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case ":", ",", "/": out.append("-")
            case "=": continue
            default: out.append(c)
            }
        }
        return out
    }

    /// The kind of the file named `name` (nil: not a derived file, such as a report or a temporary file).
    public static func kind(of name: String) -> Kind? {
        guard name.hasSuffix(".lkix"), !name.hasPrefix(".") else { return nil }
        return manifest.first { name.hasPrefix($0.prefix) }
    }

    /// One file's state, for `info`.
    public struct Status: Sendable, Codable {
        public var name: String
        public var kind: String
        public var bytes: Int64
        public var current: Bool
        public var built_from: String
        /// The variant, settings and counter its header records.
        public var inputs: [String: String]
        /// Why it is not current (nil when it is), and what it means for searches.
        public var reason: String?
        /// Journal changes a reader replays when opening it (replayed kinds).
        public var replayed_changes: Int?
        public var built_by: String
    }

    /// The one rule (see the file comment): nil when the file with `header` may be used for
    /// `catalogue`'s library as it is now, else why not.
    static func staleness(_ header: IndexFileHeader, catalogue: Catalogue, model: ModelInfo?, replayed: Bool) throws -> String? {
        try verdict(header, catalogue: catalogue, model: model, replayed: replayed).reason
    }

    /// The rule's verdict, and the journal's changes since the file when it reaches them.
    static func verdict(_ header: IndexFileHeader, catalogue: Catalogue, model: ModelInfo?,
                        replayed: Bool) throws -> (reason: String?, changes: CatalogueChanges?) {
        guard header.catalogue == catalogue.identity else {
            return (header.catalogue == nil ? "made before catalogues had identities" : "made for another catalogue at this path", nil)
        }
        if let made = header.model, let model, made != model.checksum { return ("made with other weights", nil) }
        guard let model else { return ("the library has no vectors", nil) }
        let variant = header.variant ?? EmbeddingVariant.raw
        guard let changes = try catalogue.changes(after: header.catalogueCounter, model: model.id, variant: variant) else {
            return ("older than the change journal reaches (change \(header.catalogueCounter))", nil)
        }
        if !replayed && !changes.isEmpty {
            return ("\(changes.added.count) images added or changed and \(changes.removed.count) removed since it was made", changes)
        }
        return (nil, changes)
    }

    /// Every derived file of `catalogue` with the rule's verdict.
    public static func status(catalogue: Catalogue) throws -> [Status] {
        let folder = LibrarySnapshot.folder(for: catalogue)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
        let model = try catalogue.storedModel()
        let job = LocalFeaturesJob.running(for: catalogue)
        let making = job.map { "being made in the background: \($0.done) of \($0.total) images (pid \($0.pid))" }
        var listed = names.compactMap { name -> Status? in
            guard let kind = kind(of: name) else { return nil }
            let url = folder.appendingPathComponent(name)
            let bytes = ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.int64Value ?? 0
            var status = Status(name: name, kind: kind.name, bytes: bytes, current: false, built_from: kind.builtFrom,
                                inputs: [:], reason: nil, replayed_changes: nil, built_by: kind.builtBy)
            var entries: Int?
            do {
                let contents = try IndexFile.read(url, catalogue: nil)
                let header = contents.header
                entries = header.count
                var inputs = header.fields.filter { !["fingerprint", "edges", "lists"].contains($0.key) }
                inputs["counter"] = String(header.catalogueCounter)
                if let variant = header.variant { inputs["variant"] = variant }
                if kind.prefix.isEmpty { inputs["method"] = contents.tag }
                status.inputs = inputs
                let (reason, changes) = try verdict(header, catalogue: catalogue, model: model, replayed: kind.replayed)
                status.reason = reason
                status.current = reason == nil
                if status.current, kind.replayed, let changes {
                    status.replayed_changes = changes.added.count + changes.removed.count
                }
            } catch {
                status.reason = "unreadable: \(error)"
            }
            if kind.prefix == "answers-", status.current, status.inputs["scores"] != "1" {
                // Lists from before scores were kept: the reader refuses them, searches run live.
                status.current = false
                status.reason = "made by an older release (no scores): searches run live until `lookalike index` remakes them"
            }
            if kind.prefix == "visual-words" {
                // Made in chunks: current only when no job is at it and it covers every image.
                if let making {
                    status.current = false
                    status.reason = making
                } else if status.current, let model, let entries, let images = try? catalogue.vectorCount(model: model.id), entries != images {
                    status.current = false
                    status.reason = "covers \(entries) of \(images) images (an interrupted job): `lookalike index` resumes it"
                }
            }
            return status
        }
        if model != nil, !names.contains(where: { $0.hasPrefix("visual-words") }), let kind = manifest.first(where: { $0.prefix == "visual-words" }) {
            listed.append(Status(name: "visual-words.lkix", kind: kind.name, bytes: 0, current: false, built_from: kind.builtFrom,
                                 inputs: [:], reason: making ?? "not made yet: `lookalike index` starts it in the background, `lookalike prepare verify` makes it now",
                                 replayed_changes: nil, built_by: kind.builtBy))
        }
        return listed
    }
}
