// WeightsFile owns the engine's weights file format (.lkw, see docs/WEIGHTS_FORMAT.md): it reads
// the file, checks the magic, the format version, the JSON header, the sha256 of the data section and
// that every tensor EfficientNet-Lite0 needs is present with the expected shape, and hands out the raw
// float32 tensors plus the ImageNet labels. Every failure is a typed `WeightsFileError` that names the
// file and the reason. It knows nothing about XNNPACK (EfficientNetLiteGraph) or threads (NetworkRunner).
import Crypto
import Foundation

public struct WeightsFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        case unreadable(String)
        case badMagic
        case unsupportedVersion(Int)
        case badHeader(String)
        case truncated
        case checksumMismatch
        case missingTensor(String)
        case wrongShape(tensor: String, expected: [Int], found: [Int])
    }
    public let path: String
    public let reason: Reason

    public var description: String {
        let why: String
        switch reason {
        case .unreadable(let m): why = "cannot be read (\(m))"
        case .badMagic: why = "not a Lookalike weights file (bad magic; expected \"LKWEIGHT\")"
        case .unsupportedVersion(let v): why = "unsupported format version \(v) (this build reads version 1; run `make setup` to reconvert)"
        case .badHeader(let m): why = "invalid header (\(m))"
        case .truncated: why = "file is truncated (run `make setup` to reconvert)"
        case .checksumMismatch: why = "checksum mismatch (file is corrupt or was modified; run `make setup` to reconvert)"
        case .missingTensor(let n): why = "tensor \(n) is missing (not an EfficientNet-Lite0 weights file)"
        case let .wrongShape(n, e, f): why = "tensor \(n) has shape \(f), expected \(e) (not an EfficientNet-Lite0 weights file)"
        }
        return "weights file \(path): \(why)"
    }
}

/// One raw float32 tensor from the file (PyPI/PyTorch layout, e.g. OIHW for convolutions).
public struct WeightTensor: Sendable {
    public let shape: [Int]
    public let values: [Float]
}

public struct WeightsFile: Sendable {
    public static let magic = Array("LKWEIGHT".utf8)
    public static let supportedVersion = 1

    public let path: String
    public let modelName: String
    /// sha256 (hex) of the data section, as recorded in the header and verified at load.
    public let checksum: String
    public let labels: [String]
    public let tensors: [String: WeightTensor]

    /// Raw tensor by name (validated at load, so names from `expectedShapes` are always present).
    public func tensor(_ name: String) throws(WeightsFileError) -> WeightTensor {
        guard let t = tensors[name] else { throw WeightsFileError(path: path, reason: .missingTensor(name)) }
        return t
    }

    private struct Header: Decodable {
        struct Entry: Decodable { let dtype: String; let shape: [Int]; let offset: Int; let nbytes: Int }
        let format: String
        let version: Int
        let model: String
        let labels: [String]
        let data_sha256: String
        let tensors: [String: Entry]
    }
    private struct VersionOnly: Decodable { let version: Int }

    public static func load(url: URL) throws(WeightsFileError) -> WeightsFile {
        let path = url.path
        func fail(_ r: WeightsFileError.Reason) -> WeightsFileError { WeightsFileError(path: path, reason: r) }
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw fail(.unreadable(FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such file"))
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 16 else { throw bytes.count >= 8 && Array(bytes[0..<8]) == magic ? fail(.truncated) : fail(.badMagic) }
        guard Array(bytes[0..<8]) == magic else { throw fail(.badMagic) }
        var hlen: UInt64 = 0
        for i in 0..<8 { hlen |= UInt64(bytes[8 + i]) << (8 * UInt64(i)) }
        guard hlen < UInt64(bytes.count), 16 + Int(hlen) <= bytes.count else { throw fail(.truncated) }
        let headerBytes = Data(bytes[16..<(16 + Int(hlen))])
        let decoder = JSONDecoder()
        // Check the version first, so a future format gets a version error rather than a parse error.
        guard let v = try? decoder.decode(VersionOnly.self, from: headerBytes) else {
            throw fail(.badHeader("header is not the expected JSON"))
        }
        guard v.version == supportedVersion else { throw fail(.unsupportedVersion(v.version)) }
        let header: Header
        do { header = try decoder.decode(Header.self, from: headerBytes) } catch {
            throw fail(.badHeader("header is not the expected JSON: \(error)"))
        }
        guard header.format == "lookalike-weights" else { throw fail(.badHeader("format is \"\(header.format)\"")) }
        guard header.model == "efficientnet-lite0" else { throw fail(.badHeader("model is \"\(header.model)\", expected efficientnet-lite0")) }
        guard header.labels.count == 1000 else { throw fail(.badHeader("\(header.labels.count) labels, expected 1000")) }

        let dataStart = (16 + Int(hlen) + 63) / 64 * 64
        guard dataStart <= bytes.count else { throw fail(.truncated) }
        let needed = header.tensors.values.map { $0.offset + $0.nbytes }.max() ?? 0
        guard dataStart + needed <= bytes.count else { throw fail(.truncated) }
        let digest = SHA256.hash(data: bytes[dataStart...])
        let hex = digest.map { String(format: "%02x", $0) }.joined()
        guard hex == header.data_sha256.lowercased() else { throw fail(.checksumMismatch) }

        var tensors: [String: WeightTensor] = [:]
        for (name, e) in header.tensors {
            guard e.dtype == "f32" else { throw fail(.badHeader("tensor \(name) has dtype \(e.dtype)")) }
            let count = e.shape.reduce(1, *)
            guard e.offset >= 0, e.nbytes == count * 4, e.shape.allSatisfy({ $0 > 0 }) else {
                throw fail(.badHeader("tensor \(name): nbytes \(e.nbytes) does not match shape \(e.shape)"))
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(dataStart + e.offset)..<(dataStart + e.offset + e.nbytes)]))
                }
            }
            #if _endian(big)
            values = values.map { Float(bitPattern: $0.bitPattern.byteSwapped) }
            #endif
            tensors[name] = WeightTensor(shape: e.shape, values: values)
        }
        for (name, shape) in EfficientNetLite0.expectedShapes {
            guard let t = tensors[name] else { throw fail(.missingTensor(name)) }
            guard t.shape == shape else { throw fail(.wrongShape(tensor: name, expected: shape, found: t.shape)) }
        }
        return WeightsFile(path: path, modelName: header.model, checksum: header.data_sha256.lowercased(),
                           labels: header.labels, tensors: tensors)
    }
}

/// The fixed EfficientNet-Lite0 architecture (channels, kernel sizes, strides of the 16 MBConv blocks).
public enum EfficientNetLite0 {
    public struct Block: Sendable {
        public let inChannels: Int, outChannels: Int, expandRatio: Int, kernel: Int, stride: Int
        public var hidden: Int { inChannels * expandRatio }
        public var residual: Bool { stride == 1 && inChannels == outChannels }
    }
    public static let stemChannels = 32, headChannels = 1280, classes = 1000, inputSize = Preprocessing.inputSize
    public static let blocks: [Block] = {
        // (in, out, expand, kernel, stride) for the 7 stages, repeated blocks expanded.
        let spec: [(Int, Int, Int, Int, Int)] = [
            (32, 16, 1, 3, 1),
            (16, 24, 6, 3, 2), (24, 24, 6, 3, 1),
            (24, 40, 6, 5, 2), (40, 40, 6, 5, 1),
            (40, 80, 6, 3, 2), (80, 80, 6, 3, 1), (80, 80, 6, 3, 1),
            (80, 112, 6, 5, 1), (112, 112, 6, 5, 1), (112, 112, 6, 5, 1),
            (112, 192, 6, 5, 2), (192, 192, 6, 5, 1), (192, 192, 6, 5, 1), (192, 192, 6, 5, 1),
            (192, 320, 6, 3, 1),
        ]
        return spec.map { Block(inChannels: $0.0, outChannels: $0.1, expandRatio: $0.2, kernel: $0.3, stride: $0.4) }
    }()

    /// Every tensor the network reads, with its PyTorch shape.
    public static let expectedShapes: [(String, [Int])] = {
        var s: [(String, [Int])] = []
        func bn(_ p: String, _ c: Int) {
            for f in ["weight", "bias", "running_mean", "running_var"] { s.append(("\(p).\(f)", [c])) }
        }
        s.append(("_conv_stem.weight", [stemChannels, 3, 3, 3])); bn("_bn0", stemChannels)
        for (i, b) in blocks.enumerated() {
            let p = "_blocks.\(i)."
            if b.expandRatio != 1 {
                s.append((p + "_expand_conv.weight", [b.hidden, b.inChannels, 1, 1])); bn(p + "_bn0", b.hidden)
            }
            s.append((p + "_depthwise_conv.weight", [b.hidden, 1, b.kernel, b.kernel])); bn(p + "_bn1", b.hidden)
            s.append((p + "_project_conv.weight", [b.outChannels, b.hidden, 1, 1])); bn(p + "_bn2", b.outChannels)
        }
        s.append(("_conv_head.weight", [headChannels, 320, 1, 1])); bn("_bn1", headChannels)
        s.append(("_fc.weight", [classes, headChannels])); s.append(("_fc.bias", [classes]))
        return s
    }()
}
