// Supervised binary codes: the latent hash layer of Lin et al. (CVPRW 2015, the seed thesis's
// method), on the frozen CNN embeddings instead of fine-tuning the network: B sigmoid units
// h = sigmoid(x W + b) followed by a softmax classifier over the labels (folder names), trained
// with cross-entropy by minibatch Adam; the code is h >= 0.5, that is x W + b >= 0, so it becomes a
// `LinearHashEncoder`. Inputs are centred and scaled by sqrt(D) (unit vectors have per-dimension
// values near 1/sqrt(D); the scale is folded back into the encoder). A held-out share of the
// training images measures accuracy after every epoch. Deterministic for a seed: the split, the
// initial weights and the minibatch order all come from it.
import Foundation

public struct LatentHashTrainer: Sendable {
    public struct Options: Sendable {
        public var bits = 64
        public var epochs = 40
        public var batchSize = 64
        public var learningRate: Float = 1e-3
        public var weightDecay: Float = 1e-4
        public var validationFraction = 0.1
        public var seed: UInt64 = 1
        public init() {}
    }

    public struct Epoch: Sendable {
        public let epoch: Int, epochs: Int
        public let loss: Double
        public let trainAccuracy: Double
        public let validationAccuracy: Double?
    }

    public struct Result: Sendable {
        public let encoder: LinearHashEncoder
        public let trainAccuracy: Double
        public let validationAccuracy: Double?
        public let trainCount: Int
        public let validationCount: Int
        /// Classifier weights, for accuracy on other images (`accuracy(of:labels:)`).
        let model: Model
        public func accuracy(vectors: [Float], labels: [Int]) -> Double { model.accuracy(vectors, labels) }
    }

    /// The network's parameters (input normalisation, hash layer, classifier).
    struct Model: Sendable {
        let d: Int, bits: Int, classes: Int
        let mean: [Float]
        let scale: Float
        var w1: [Float], b1: [Float], w2: [Float], b2: [Float]

        func normalised(_ x: [Float]) -> [Float] {
            let n = x.count / d
            var out = x
            for i in 0..<n { for j in 0..<d { out[i * d + j] = (x[i * d + j] - mean[j]) * scale } }
            return out
        }

        /// Hidden activations and class logits of n normalised rows.
        func forward(_ xn: [Float], n: Int) -> (h: [Float], logits: [Float]) {
            var z = [Float](repeating: 0, count: n * bits)
            for i in 0..<n { for j in 0..<bits { z[i * bits + j] = b1[j] } }
            Linear.gemm(xn, w1, m: n, n: bits, k: d, beta: 1, into: &z)
            let h = z.map { 1 / (1 + expf(-$0)) }
            var logits = [Float](repeating: 0, count: n * classes)
            for i in 0..<n { for c in 0..<classes { logits[i * classes + c] = b2[c] } }
            Linear.gemm(h, w2, m: n, n: classes, k: bits, beta: 1, into: &logits)
            return (h, logits)
        }

        func accuracy(_ x: [Float], _ labels: [Int]) -> Double {
            let n = x.count / d
            guard n > 0 else { return 0 }
            let (_, logits) = forward(normalised(x), n: n)
            var right = 0
            for i in 0..<n {
                var best = 0
                for c in 1..<classes where logits[i * classes + c] > logits[i * classes + best] { best = c }
                if best == labels[i] { right += 1 }
            }
            return Double(right) / Double(n)
        }

        var encoder: LinearHashEncoder {
            get throws {
                // bit j: ((x - mean) * scale) . w1_j + b1_j >= 0  =  x . (scale w1_j) + (b1_j - scale mean . w1_j) >= 0
                let projection = w1.map { $0 * scale }
                var offset = b1
                for j in 0..<bits {
                    var s: Float = 0
                    for i in 0..<d { s += mean[i] * w1[i * bits + j] }
                    offset[j] -= scale * s
                }
                return try LinearHashEncoder(dimension: d, bits: bits, projection: projection, offset: offset,
                                             head: .init(classes: classes, weights: w2, bias: b2))
            }
        }
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Trains on `vectors` (rows of `dimension`) with labels 0..<classes; `progress` after each epoch.
    public func train(vectors: [Float], dimension d: Int, labels: [Int], classes: Int,
                      progress: (Epoch) -> Void = { _ in }) throws -> Result {
        let total = vectors.count / max(1, d)
        guard total == labels.count, total >= 4 else {
            throw IndexError("latent hash layer: need at least 4 labelled vectors (got \(total) vectors, \(labels.count) labels)")
        }
        guard classes >= 2, labels.allSatisfy({ (0..<classes).contains($0) }) else {
            throw IndexError("latent hash layer: need at least 2 classes with labels in 0..<\(classes)")
        }
        let bits = options.bits
        var rng = TrainingRandom(seed: options.seed)
        // Held-out split, stratified by nothing but the seed (classes of 2+ images usually land on both sides).
        var order = Array(0..<total)
        rng.shuffle(&order)
        let held = Int(Double(total) * options.validationFraction)
        let validation = Array(order.prefix(held)).sorted(), training = Array(order.dropFirst(held)).sorted()
        func rows(_ idx: [Int]) -> [Float] {
            var out = [Float](repeating: 0, count: idx.count * d)
            for (i, r) in idx.enumerated() { for j in 0..<d { out[i * d + j] = vectors[r * d + j] } }
            return out
        }
        let trainX = rows(training), trainY = training.map { labels[$0] }
        let validX = rows(validation), validY = validation.map { labels[$0] }

        var mean = [Float](repeating: 0, count: d)
        for i in 0..<training.count { for j in 0..<d { mean[j] += trainX[i * d + j] } }
        for j in 0..<d { mean[j] /= Float(training.count) }
        let xavier1 = (2 / Float(d + bits)).squareRoot(), xavier2 = (2 / Float(bits + classes)).squareRoot()
        var model = Model(d: d, bits: bits, classes: classes, mean: mean, scale: Float(d).squareRoot(),
                          w1: (0..<d * bits).map { _ in rng.normal() * xavier1 }, b1: [Float](repeating: 0, count: bits),
                          w2: (0..<bits * classes).map { _ in rng.normal() * xavier2 }, b2: [Float](repeating: 0, count: classes))
        let xn = model.normalised(trainX)
        var adam = [Adam](repeating: Adam(), count: 4)
        for i in 0..<4 { adam[i].reserve([d * bits, bits, bits * classes, classes][i]) }
        let n = training.count, batch = max(1, min(options.batchSize, n))
        var lastTrain = 0.0
        for epoch in 1...max(1, options.epochs) {
            var perm = Array(0..<n)
            rng.shuffle(&perm)
            var lossSum = 0.0, right = 0
            var start = 0
            while start < n {
                let idx = Array(perm[start..<min(n, start + batch)])
                start += batch
                let m = idx.count
                var xb = [Float](repeating: 0, count: m * d)
                for (i, r) in idx.enumerated() { for j in 0..<d { xb[i * d + j] = xn[r * d + j] } }
                let (h, logits) = model.forward(xb, n: m)
                // Softmax cross-entropy; dLogits = (p - onehot) / m.
                var dLogits = [Float](repeating: 0, count: m * classes)
                for i in 0..<m {
                    let row = i * classes
                    var top = logits[row]
                    var best = 0
                    for c in 1..<classes where logits[row + c] > top { top = logits[row + c]; best = c }
                    if best == trainY[idx[i]] { right += 1 }
                    var sum: Float = 0
                    for c in 0..<classes { let e = expf(logits[row + c] - top); dLogits[row + c] = e; sum += e }
                    let y = trainY[idx[i]]
                    lossSum -= Double(logf(max(dLogits[row + y] / sum, 1e-12)))
                    for c in 0..<classes { dLogits[row + c] = (dLogits[row + c] / sum - (c == y ? 1 : 0)) / Float(m) }
                }
                var gw2 = Linear.product(h, dLogits, m: bits, n: classes, k: m, transA: true)
                var gb2 = [Float](repeating: 0, count: classes)
                for i in 0..<m { for c in 0..<classes { gb2[c] += dLogits[i * classes + c] } }
                var dz = Linear.product(dLogits, model.w2, m: m, n: bits, k: classes, transB: true)
                for t in 0..<dz.count { dz[t] *= h[t] * (1 - h[t]) }
                var gw1 = Linear.product(xb, dz, m: d, n: bits, k: m, transA: true)
                var gb1 = [Float](repeating: 0, count: bits)
                for i in 0..<m { for j in 0..<bits { gb1[j] += dz[i * bits + j] } }
                let decay = options.weightDecay
                for t in 0..<gw1.count { gw1[t] += decay * model.w1[t] }
                for t in 0..<gw2.count { gw2[t] += decay * model.w2[t] }
                adam[0].step(&model.w1, gw1, rate: options.learningRate)
                adam[1].step(&model.b1, gb1, rate: options.learningRate)
                adam[2].step(&model.w2, gw2, rate: options.learningRate)
                adam[3].step(&model.b2, gb2, rate: options.learningRate)
            }
            lastTrain = Double(right) / Double(n)
            let valid = validation.isEmpty ? nil : model.accuracy(validX, validY)
            progress(Epoch(epoch: epoch, epochs: options.epochs, loss: lossSum / Double(n), trainAccuracy: lastTrain,
                           validationAccuracy: valid))
        }
        return Result(encoder: try model.encoder, trainAccuracy: model.accuracy(trainX, trainY),
                      validationAccuracy: validation.isEmpty ? nil : model.accuracy(validX, validY),
                      trainCount: training.count, validationCount: validation.count, model: model)
    }
}

/// Adam (Kingma & Ba) state for one parameter array.
struct Adam: Sendable {
    var m: [Float] = [], v: [Float] = []
    var t = 0
    let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    mutating func reserve(_ count: Int) {
        m = [Float](repeating: 0, count: count)
        v = [Float](repeating: 0, count: count)
    }

    mutating func step(_ parameters: inout [Float], _ gradient: [Float], rate: Float) {
        t += 1
        let c1 = 1 - powf(beta1, Float(t)), c2 = 1 - powf(beta2, Float(t))
        for i in 0..<parameters.count {
            m[i] = beta1 * m[i] + (1 - beta1) * gradient[i]
            v[i] = beta2 * v[i] + (1 - beta2) * gradient[i] * gradient[i]
            parameters[i] -= rate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
        }
    }
}
