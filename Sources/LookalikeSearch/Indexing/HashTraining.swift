// Training a library's hash encoder end to end (what `lookalike prepare hash` and the benchmark
// run): read the vectors and folder labels from the catalogue, choose the training images (all, or
// those listed in a train list, matched by path suffix), hold out a share for accuracy, train the
// supervised latent hash layer when there are labels (else, or with `.itq`, PCA + ITQ), and report
// accuracies: on the held-out share, and on the labelled images outside the train list (test).
// Labels listed in `ignoredLabels` (BACKGROUND_Google, Caltech-101's clutter) are never classes.
import Crypto
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public enum HashTraining {
    public enum Mode: String, Sendable, CaseIterable {
        case auto, supervised, itq
    }

    public struct Outcome: Sendable {
        public let model: HashModel
        public let kind: String
        public let trainCount: Int
        public let heldOutCount: Int
        public let testCount: Int
        public let classes: Int
        public let trainAccuracy: Double?
        public let heldOutAccuracy: Double?
        public let testAccuracy: Double?
        /// SHA-256 (first 16 hex digits) of the encoder: equal for equal seeds and inputs.
        public let checksum: String
        public let seconds: Double
    }

    public static func train(catalogue: Catalogue, model: ModelInfo, bits: Int, mode: Mode = .auto, epochs: Int = 40,
                             seed: UInt64 = 1, trainList: [String]? = nil, ignoredLabels: Set<String> = ["BACKGROUND_Google"],
                             progress: (LatentHashTrainer.Epoch) -> Void = { _ in }) throws -> Outcome {
        let started = Date()
        guard (16...256).contains(bits) else { throw IndexError("prepare hash: --bits \(bits); use 16 to 256") }
        let (ids, vectors) = try catalogue.loadVectors(model: model.id, dimension: model.dimension)
        guard !ids.isEmpty else { throw IndexError("prepare hash: the library \(catalogue.path) has no vectors") }
        let summaries = try catalogue.allSummaries()
        let d = model.dimension
        // Which images train: those in the list (by path suffix), else all.
        var inTraining = [Bool](repeating: trainList == nil, count: ids.count)
        if let trainList {
            let wanted = Set(trainList.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") })
            for (i, id) in ids.enumerated() {
                guard let path = summaries[id]?.path else { continue }
                let parts = path.split(separator: "/")
                // Match the last 1..3 path components (lists are relative to the dataset folder).
                for n in 1...min(3, parts.count) where wanted.contains(parts.suffix(n).joined(separator: "/")) {
                    inTraining[i] = true
                    break
                }
            }
            guard inTraining.contains(true) else {
                throw IndexError("prepare hash: no library image matches the train list (\(wanted.count) entries; paths are matched by their last components, e.g. class/image.jpg)")
            }
        }
        func label(_ i: Int) -> String? {
            guard let l = summaries[ids[i]]?.label, !l.isEmpty, !ignoredLabels.contains(l) else { return nil }
            return l
        }
        var counts: [String: Int] = [:]
        for i in ids.indices where inTraining[i] { if let l = label(i) { counts[l, default: 0] += 1 } }
        let classNames = counts.filter { $0.value >= 2 }.keys.sorted()
        let supervised: Bool
        switch mode {
        case .itq: supervised = false
        case .supervised:
            guard classNames.count >= 2 else {
                throw IndexError("prepare hash --supervised: the training images have \(classNames.count) folder labels with 2+ images; need 2")
            }
            supervised = true
        case .auto: supervised = classNames.count >= 2
        }
        func rows(_ idx: [Int]) -> [Float] {
            var out = [Float](repeating: 0, count: idx.count * d)
            for (r, i) in idx.enumerated() { for j in 0..<d { out[r * d + j] = vectors[i * d + j] } }
            return out
        }
        let encoder: LinearHashEncoder
        var trainCount = 0, heldOut = 0, testCount = 0
        var trainAccuracy: Double?, heldOutAccuracy: Double?, testAccuracy: Double?
        let kind: String
        if supervised {
            let classIndex = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
            let train = ids.indices.filter { inTraining[$0] && label($0).flatMap { classIndex[$0] } != nil }
            var options = LatentHashTrainer.Options()
            options.bits = bits
            options.epochs = epochs
            options.seed = seed
            let result = try LatentHashTrainer(options: options).train(
                vectors: rows(train), dimension: d, labels: train.compactMap { label($0).flatMap { classIndex[$0] } },
                classes: classNames.count, progress: progress)
            encoder = result.encoder
            trainCount = result.trainCount
            heldOut = result.validationCount
            trainAccuracy = result.trainAccuracy
            heldOutAccuracy = result.validationAccuracy
            if trainList != nil {
                let test = ids.indices.filter { !inTraining[$0] && label($0).flatMap { classIndex[$0] } != nil }
                testCount = test.count
                if !test.isEmpty {
                    testAccuracy = result.accuracy(vectors: rows(test), labels: test.compactMap { label($0).flatMap { classIndex[$0] } })
                }
            }
            kind = "supervised"
        } else {
            let train = ids.indices.filter { inTraining[$0] }
            let result = try ITQTrainer.train(vectors: rows(train), dimension: d, bits: bits, seed: seed)
            encoder = result.encoder
            trainCount = result.samples
            kind = "itq"
        }
        let checksum = SHA256.hash(data: encoder.serialized()).map { String(format: "%02x", $0) }.joined().prefix(16)
        var summary = "\(kind), \(bits) bits, \(trainCount) training images, seed \(seed)"
        if let heldOutAccuracy { summary += String(format: ", held-out accuracy %.4f", heldOutAccuracy) }
        if let testAccuracy { summary += String(format: ", test accuracy %.4f", testAccuracy) }
        let hashModel = HashModel(name: HashModel.name(bits: bits), kind: kind, encoder: encoder, summary: summary,
                                  trainedAt: Date())
        return Outcome(model: hashModel, kind: kind, trainCount: trainCount, heldOutCount: heldOut, testCount: testCount,
                       classes: supervised ? classNames.count : 0, trainAccuracy: trainAccuracy, heldOutAccuracy: heldOutAccuracy,
                       testAccuracy: testAccuracy, checksum: String(checksum), seconds: Date().timeIntervalSince(started))
    }

    /// Stores the outcome in the catalogue (replacing the model of the same bit count) and brings
    /// existing index files up to date (the `hash` file of these bits is rebuilt: its trained model
    /// changed; new images are coded by the encoder when an index adds them).
    @discardableResult
    public static func save(_ outcome: Outcome, catalogue: Catalogue, model: ModelInfo) throws -> [LibraryIndexes.Update] {
        try catalogue.save(hashModel: outcome.model, model: model.id)
        return try LibraryIndexes.update(catalogue: catalogue, model: model)
    }
}
