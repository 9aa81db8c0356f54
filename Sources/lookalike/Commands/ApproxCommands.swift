// `lookalike prepare index` and `lookalike prepare hash`: the writer's commands for the approximate
// indexes. `prepare index` builds (or rebuilds) index files beside the catalogue, which every later
// search loads instead of building in memory, and `lookalike index` then keeps up to date.
// `prepare hash` learns the `hash` method's binary codes and stores them in the catalogue.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

extension HashTraining.Mode: ExpressibleByArgument {}

struct BuildIndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Build approximate index files beside the library (searches then load them).",
        discussion: """
            Methods (--method, repeatable):
              \(IndexFactory.summaries.joined(separator: "\n  "))
            Files go to <db>.indexes/ (e.g. hnsw-32.lkix); `lookalike index` keeps existing ones up to \
            date. A hash index without a trained model trains PCA+ITQ first and stores it (see `prepare hash`).
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Index descriptor to build, e.g. hnsw:32, hash:64, lsh:10:5 (repeatable).")
    var method: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard !method.isEmpty else { throw ValidationError("give at least one --method, e.g. --method hnsw:32") }
        for m in method {
            let d = try IndexDescriptor(parsing: m)
            guard d.method != ExactIndex.methodName else {
                throw ValidationError("exact search needs no index file (it scans the library snapshot)")
            }
            guard IndexFactory.names.contains(d.method) else {
                throw ValidationError("unknown method '\(d.method)'; known: \(IndexFactory.names.joined(separator: ", "))")
            }
        }
    }

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        guard let model = try catalogue.storedModel() else {
            throw Failure(message: "library \(database.db) is empty: index a folder first")
        }
        var updates: [LibraryIndexes.Update] = []
        for m in method {
            let update = try LibraryIndexes.build(try IndexDescriptor(parsing: m), catalogue: catalogue, model: model)
            updates.append(update)
            if !json {
                print("\(update.descriptor): \(update.action) \(update.file), \(update.count) images in \(format(update.seconds, 2)) s")
            }
        }
        if json { print(try Console.json(updates)) }
    }
}

struct TrainHashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Learn binary hash codes for the `hash` index (supervised with folder labels, else PCA+ITQ).",
        discussion: """
            Supervised (the latent hash layer of Lin et al. 2015): B sigmoid units and a softmax over \
            the folder labels, trained on the stored embeddings with Adam; code = activation >= 0.5. \
            A share of the training images (10 %) is held out to report accuracy; with --train-list, \
            only the listed images (paths relative to the dataset folder, e.g. class/image.jpg) train, \
            and the accuracy on the other labelled images is printed too. --itq (or a library without \
            labels): PCA to B dimensions + ITQ rotation. Deterministic for a fixed --seed. The model \
            is stored in the catalogue as hash:B, replacing an earlier one; hash index files are rebuilt.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Bits per code (16 to 256).") var bits: Int = 64
    @Flag(help: "Supervised codes (needs folder labels).") var supervised = false
    @Flag(help: "Unsupervised PCA + ITQ codes.") var itq = false
    @Option(help: "Training epochs (supervised).") var epochs: Int = 40
    @Option(help: "Random seed (split, initial weights, minibatch order, ITQ rotation).") var seed: UInt64 = 1
    @Option(help: "File listing the training images, one path per line (relative, e.g. class/image_0001.jpg).")
    var trainList: String?
    @Option(help: "Folder label that is clutter, never a class (repeatable).") var ignoreLabel: [String] = ["BACKGROUND_Google"]

    func validate() throws {
        guard !(supervised && itq) else { throw ValidationError("choose --supervised or --itq, not both") }
        guard (16...256).contains(bits) else { throw ValidationError("--bits must be 16 to 256") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    }

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        guard let model = try catalogue.storedModel() else {
            throw Failure(message: "library \(database.db) is empty: index a folder first")
        }
        var list: [String]?
        if let trainList {
            guard let text = try? String(contentsOfFile: trainList, encoding: .utf8) else {
                throw Failure(message: "\(trainList): cannot read the train list")
            }
            list = text.split(whereSeparator: \.isNewline).map(String.init)
        }
        let mode: HashTraining.Mode = supervised ? .supervised : itq ? .itq : .auto
        let outcome = try HashTraining.train(
            catalogue: catalogue, model: model, bits: bits, mode: mode, epochs: epochs, seed: seed, trainList: list,
            ignoredLabels: Set(ignoreLabel)) { e in
                var line = "epoch \(e.epoch)/\(e.epochs)  loss \(format(e.loss, 4))  train accuracy \(format(e.trainAccuracy, 4))"
                if let v = e.validationAccuracy { line += "  held-out accuracy \(format(v, 4))" }
                Console.error(line)
            }
        let updates = try HashTraining.save(outcome, catalogue: catalogue, model: model)
        print("trained \(outcome.model.name) (\(outcome.kind)) on \(outcome.trainCount) images"
              + (outcome.classes > 0 ? " of \(outcome.classes) classes" : "") + " in \(format(outcome.seconds, 1)) s; encoder \(outcome.checksum)")
        if let a = outcome.trainAccuracy { print("training accuracy \(format(a, 4))") }
        if let a = outcome.heldOutAccuracy { print("held-out accuracy \(format(a, 4)) (\(outcome.heldOutCount) images)") }
        if let a = outcome.testAccuracy { print("test accuracy \(format(a, 4)) (\(outcome.testCount) images outside the train list)") }
        for u in updates { print("index \(u.file): \(u.action), \(u.count) images") }
    }
}
