// `lookalike index`: builds or updates a library from folders. Draws a progress bar on a terminal
// (plain periodic lines otherwise), then prints the run's summary and the failures with reasons.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch
import LookalikeVerification

struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Index folders of images (recursive, incremental, crash-safe).",
        discussion: """
            Exit status: 0 when the run completed (files that could not be read are listed as \
            failures and skipped), 1 when a folder given does not exist.
            Images are recognised by content. A rerun only embeds new or changed files (size and \
            mtime, confirmed by a content hash); files with identical bytes are stored once. The \
            parent folder's name is stored as each image's label. Safe to interrupt: rerun to finish.
            With --store milvus://HOST:PORT/COLLECTION the images are embedded into the local \
            library as usual (--db: the worker's crash-safe record of what it embedded and sent), \
            then what the collection does not hold yet is pushed to it (looked up by content hash \
            first: reruns and other workers never add an image twice); --prune also deletes from \
            the collection the images whose last path went. Exit status 2 when the store failed \
            (the local library is complete: rerun to finish the push).
            """)

    @Argument(help: "Folders (or files) to index.")
    var folders: [String]

    @OptionGroup var database: DatabaseOption

    @Flag(help: "Remove library entries whose files are gone.")
    var prune = false

    @Flag(help: "With --prune, also forget the files under a folder that is missing or empty (normally kept: it may be an unmounted drive).")
    var force = false

    @Option(help: "Also write the failures (path<TAB>reason per line) to this file.")
    var failures: String?

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Option(help: "Worker threads (each decodes and runs the network); default: one per core.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "For a new library: the image descriptor, whole+rmac (default: the whole image, average and regional pooling) or centre-crop (the reference's). An existing library keeps its own.")
    var descriptor: Descriptor?

    @Flag(help: "Keep running: index new, changed and deleted files as they appear (implies --prune).")
    var watch = false

    @Option(help: "With --watch, seconds between looks at the folders.")
    var interval: Double = 2

    @Option(help: "Also push to this vector store: milvus://HOST:PORT/COLLECTION (default: the local library only).")
    var store: String?

    @Option(help: "With --store, images per insert request.")
    var storeBatch: Int = 512

    func validate() throws {
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
        guard storeBatch > 0 else { throw ValidationError("--store-batch must be positive") }
        if let store {
            guard !watch else { throw ValidationError("--watch with --store is not supported yet: rerun `index --store` instead") }
            do { _ = try MilvusAddress(parsing: store) } catch { throw ValidationError(String(describing: error)) }
        }
    }

    func run() async throws {
        let catalogue = try Catalogue(path: database.db)
        let stored = try catalogue.storedModel().map { Descriptor(modelID: $0.id) }
        if let stored, let descriptor, descriptor != stored {
            throw ValidationError("library \(database.db) was indexed with the \(stored.rawValue) descriptor, not \(descriptor.rawValue): use a new --db")
        }
        let embedder = try Embedder(weightsURL: model.map { URL(fileURLWithPath: $0) }, threads: max(1, threads),
                                    descriptor: stored ?? descriptor ?? .standard)
        let indexer = Indexer(catalogue: catalogue, embedder: embedder)
        let local = try runOnce(indexer, prune: prune || watch)
        if let store {
            try await push(catalogue: catalogue, model: embedder.model, to: try MilvusAddress(parsing: store), local: local)
            return
        }
        guard watch else { return }
        // SIGINT / SIGTERM end the watch between runs (a run in progress finishes: it is crash-safe
        // anyway, but a clean finish writes the snapshot).
        let stop = Locked(false)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                stop.withLock { $0 = true }
                Console.error("index: stopping")
            }
            source.resume()
            sources.append(source)
        }
        Console.error("index: watching \(folders.joined(separator: ", ")) every \(format(interval)) s (Ctrl-C to stop)")
        let watcher = FolderWatcher(roots: folders, catalogue: catalogue, interval: interval)
        try watcher.run(shouldStop: { stop.value }) {
            try runOnce(indexer, prune: true)
        }
        sources.forEach { $0.cancel() }
    }

    /// Sends the library to the store; a store failure is reported (the local run is complete).
    func push(catalogue: Catalogue, model: ModelInfo, to address: MilvusAddress, local: IndexSummary) async throws {
        let sync = MilvusSync(catalogue: catalogue, store: MilvusStore(address: address), model: model, batchSize: storeBatch)
        let summary: MilvusPushSummary
        do {
            summary = try await sync.push(prune: prune)
        } catch {
            Console.error("error: \(error)")
            Console.error("index: the local library \(database.db) is complete; rerun the same command to finish the push")
            throw ExitCode(2)
        }
        if json {
            // One document for the whole command: the local run and the push.
            struct Both: Encodable { let index: IndexSummary; let store: MilvusPushSummary }
            print(try Console.json(Both(index: local, store: summary)))
        } else {
            print("store \(summary.store): inserted \(summary.inserted), already there \(summary.alreadyThere), "
                  + "deleted \(summary.deleted), duplicates removed \(summary.duplicatesRemoved); "
                  + "\(summary.sent) images of this library in the store, index \(summary.index), "
                  + "\(duration(summary.seconds)) (\(format(summary.insertRate)) vectors/s inserted)")
        }
    }

    @discardableResult
    func runOnce(_ indexer: Indexer, prune: Bool) throws -> IndexSummary {
        let bar = ProgressDisplay(terminal: Console.stderrIsTerminal)
        let summary = try indexer.run(roots: folders, prune: prune, force: force, progress: { bar.update($0) })
        bar.finish()
        // Local features for verified searches: too slow to make in line (4-8x the embedding), so
        // a job of its own makes them, unless one is at it already.
        var background: Int32?
        if summary.localFeaturesPending > 0, LocalFeaturesJob.running(for: indexer.catalogue) == nil {
            background = LocalFeaturesJob.startInBackground(db: database.db)
        }
        if let failures {
            let text = summary.failures.map { "\($0.path)\t\($0.reason)\n" }.joined()
            try text.write(toFile: failures, atomically: true, encoding: .utf8)
        }
        for root in summary.missingRoots { Console.error("error: \(root): no such file or folder") }
        if json {
            // With --store the push prints both summaries as one document.
            if store == nil { print(try Console.json(summary)) }
        } else {
            let rate = summary.seconds > 0 ? Double(summary.embedded) / summary.seconds : 0
            print("indexed \(summary.indexed), unchanged \(summary.unchanged), updated \(summary.updated), "
                  + "removed \(summary.removed), failed \(summary.failed)"
                  + (summary.missing > 0 ? ", missing \(summary.missing) (use --prune to remove)" : ""))
            print("\(summary.scanned) files scanned, \(summary.embedded) embedded in \(duration(summary.seconds)) "
                  + "(\(format(rate)) img/s) -> \(database.db)")
            for u in summary.indexes {
                print("index \(u.file): \(u.action), \(u.count) images" + (u.reason.isEmpty ? "" : " (\(u.reason))"))
            }
            if let a = summary.maintenance?.augmentation {
                if let why = a.skipped {
                    print("re-ranking vectors (\(a.variant)) not built: \(why)")
                } else if a.recomputed > 0 {
                    print("re-ranking vectors (\(a.variant)): \(a.recomputed) \(a.full ? "computed" : "refreshed") in \(format(a.seconds, 1)) s")
                }
            }
            if let d = summary.maintenance?.diffusion {
                if let why = d.skipped {
                    print("diffusion graph not built: \(why)")
                } else if d.rebuilt {
                    print("diffusion graph (\(d.file)): \(d.images) images in \(format(d.seconds, 1)) s")
                }
            }
            if let a = summary.maintenance?.answers {
                if let why = a.skipped {
                    print("answer lists not made: \(why)")
                } else if a.rebuilt {
                    print("answer lists (\(a.file)): \(a.images) images in \(format(a.seconds, 1)) s")
                }
            }
            if let removed = summary.maintenance?.removed, !removed.isEmpty {
                print("no longer used, removed: \(removed.joined(separator: ", "))")
            }
            if let w = summary.visualWords {
                print("local features: \(w.added) images added, \(w.removed) removed (\(w.images) in all)"
                      + (w.unreadable.isEmpty ? "" : ", \(w.unreadable.count) without local features"))
            }
            if let background {
                print("local features of \(summary.localFeaturesPending) images: being made in the background (pid \(background)); "
                      + "`lookalike info` shows progress, searches work meanwhile")
            } else if summary.localFeaturesPending > 0 {
                print("local features of \(summary.localFeaturesPending) images not made yet"
                      + (LocalFeaturesJob.running(for: indexer.catalogue) != nil ? " (a background job is at it)" : ": `lookalike prepare verify` makes them"))
            }
            for p in summary.protectedRoots {
                print("kept \(p.files) files under \(p.root): \(p.reason) (an unmounted drive?); --force forgets them")
            }
            if !summary.failures.isEmpty {
                print("failures:")
                for f in summary.failures { print("  \(f.path): \(f.reason)") }
            }
        }
        fflush(nil)
        if !summary.missingRoots.isEmpty && !watch { throw ExitCode(1) }
        return summary
    }
}

/// Progress: a redrawn bar on a terminal, one line every few seconds otherwise.
final class ProgressDisplay: Sendable {
    private let terminal: Bool
    private struct State { var lastDraw = Date.distantPast; var drewBar = false }
    private let state = Locked(State())

    init(terminal: Bool) { self.terminal = terminal }

    func update(_ p: IndexProgress) {
        state.withLock { state in
            let now = Date()
            let interval = terminal ? 0.1 : 5.0
            // Hashing is quick for most libraries: show it only when it takes a while.
            if p.phase == .hashing && p.elapsed < 2 { return }
            guard now.timeIntervalSince(state.lastDraw) >= interval || p.done == p.total else { return }
            state.lastDraw = now
            let fraction = p.total > 0 ? Double(p.done) / Double(p.total) : 1
            let eta = p.eta.map { "ETA \(duration($0))" } ?? "ETA --:--"
            let unit = p.phase == .hashing ? "files/s" : "img/s"
            let stats = "\(p.phase.rawValue) \(p.done)/\(p.total)  \(format(p.rate)) \(unit)  \(eta)"
            if terminal {
                let width = 30
                let filled = Int(fraction * Double(width))
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                FileHandle.standardError.write(Data("\r\u{1B}[2K[\(bar)] \(Int(fraction * 100))%  \(stats)".utf8))
                state.drewBar = true
            } else {
                Console.error("index: \(Int(fraction * 100))%  \(stats)")
            }
        }
    }

    func finish() {
        state.withLock { if $0.drewBar { FileHandle.standardError.write(Data("\n".utf8)) } }
    }
}
