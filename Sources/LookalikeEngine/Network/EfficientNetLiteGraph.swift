// EfficientNetLiteGraph owns the network definition: it folds BatchNorm (eps 1e-3) into the
// convolution weights and biases once at load (float64 maths, float32 result), re-lays the weights
// out for XNNPACK (OHWI for convolutions, [1,H,W,C] for depthwise), keeps those buffers alive for as
// long as any runtime uses them, and defines the XNNPACK subgraph for a fixed batch size: stem, 16
// MBConv blocks (ReLU6 as the convolutions' output clamp, residual adds), head, global average pool
// -> `feature` [N,1280] (external output 1) and fc -> `logits` [N,1000] (external output 2), input
// [N,224,224,3] NHWC (external input 0); the head's 7x7 map itself is external output 3 (regional
// pooling for the `whole+rmac` descriptor reads it). Padding is TensorFlow "SAME" (odd pixel bottom/right),
// given explicitly. It does not create runtimes or threads (NetworkRunner does).
import CXNNPACK

public struct NetworkError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "network: \(message)" }
}

/// Folded, XNNPACK-laid-out weights plus the recipe to define the subgraph. Immutable after init;
/// the buffers are freed when the last runtime that references them (through NetworkRunner) is gone.
public final class EfficientNetLiteGraph: @unchecked Sendable {
    public static let inputID: UInt32 = 0, featureID: UInt32 = 1, logitsID: UInt32 = 2, headMapID: UInt32 = 3
    /// The head's output map: side x side x 1280 per image (NHWC).
    public static let headMapSide = 7
    static let bnEpsilon = 1e-3

    struct Conv {
        let kernel: Int, stride: Int, inChannels: Int, outChannels: Int, depthwise: Bool, relu6: Bool
        let weights: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>
    }
    private var buffers: [UnsafeMutablePointer<Float>] = []
    let stem: Conv
    let blocks: [(expand: Conv?, depthwise: Conv, project: Conv, residual: Bool)]
    let head: Conv
    let fcWeights: UnsafeMutablePointer<Float>, fcBias: UnsafeMutablePointer<Float>

    public init(weights w: WeightsFile) throws(WeightsFileError) {
        var buffers: [UnsafeMutablePointer<Float>] = []
        func buffer(_ values: [Float]) -> UnsafeMutablePointer<Float> {
            // XNNPACK may read a few elements past the end with SIMD loads: pad generously.
            let p = UnsafeMutablePointer<Float>.allocate(capacity: values.count + 16)
            p.initialize(repeating: 0, count: values.count + 16)
            values.withUnsafeBufferPointer { if let base = $0.baseAddress { p.update(from: base, count: values.count) } }
            buffers.append(p)
            return p
        }
        func fold(_ conv: String, _ bn: String, stride: Int, relu6: Bool, depthwise: Bool = false) throws(WeightsFileError) -> Conv {
            let t = try w.tensor(conv + ".weight")
            let g = try w.tensor(bn + ".weight").values, b = try w.tensor(bn + ".bias").values
            let m = try w.tensor(bn + ".running_mean").values, v = try w.tensor(bn + ".running_var").values
            let (o, i, kh, kw) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
            var scale = [Double](repeating: 0, count: o)
            var bias = [Float](repeating: 0, count: o)
            for c in 0..<o {
                scale[c] = Double(g[c]) / (Double(v[c]) + EfficientNetLiteGraph.bnEpsilon).squareRoot()
                bias[c] = Float(Double(b[c]) - Double(m[c]) * scale[c])
            }
            var out = [Float](repeating: 0, count: t.values.count)
            let src = t.values
            for oc in 0..<o {
                for ic in 0..<i {
                    for y in 0..<kh {
                        for x in 0..<kw {
                            let value = Float(Double(src[((oc * i + ic) * kh + y) * kw + x]) * scale[oc])
                            if depthwise {
                                out[(y * kw + x) * o + oc] = value          // [1, kh, kw, C]
                            } else {
                                out[((oc * kh + y) * kw + x) * i + ic] = value  // OHWI
                            }
                        }
                    }
                }
            }
            return Conv(kernel: kh, stride: stride, inChannels: depthwise ? o : i, outChannels: o,
                        depthwise: depthwise, relu6: relu6, weights: buffer(out), bias: buffer(bias))
        }

        stem = try fold("_conv_stem", "_bn0", stride: 2, relu6: true)
        var blocks: [(expand: Conv?, depthwise: Conv, project: Conv, residual: Bool)] = []
        for (i, spec) in EfficientNetLite0.blocks.enumerated() {
            let p = "_blocks.\(i)."
            let expand = spec.expandRatio == 1 ? nil : try fold(p + "_expand_conv", p + "_bn0", stride: 1, relu6: true)
            let dw = try fold(p + "_depthwise_conv", p + "_bn1", stride: spec.stride, relu6: true, depthwise: true)
            let project = try fold(p + "_project_conv", p + "_bn2", stride: 1, relu6: false)
            blocks.append((expand, dw, project, spec.residual))
        }
        self.blocks = blocks
        head = try fold("_conv_head", "_bn1", stride: 1, relu6: true)
        fcWeights = buffer(try w.tensor("_fc.weight").values)  // [1000, 1280] = [out, in]
        fcBias = buffer(try w.tensor("_fc.bias").values)
        self.buffers = buffers
    }

    deinit { for p in buffers { p.deallocate() } }

    /// TF "SAME": output = ceil(size / stride); the odd padding pixel goes after (bottom/right).
    static func samePadding(size: Int, kernel: Int, stride: Int) -> (out: Int, before: Int, after: Int) {
        let out = (size + stride - 1) / stride
        let total = max((out - 1) * stride + kernel - size, 0)
        return (out, total / 2, total - total / 2)
    }

    /// Defines the whole network for `batch` images in a new subgraph (caller deletes it).
    func makeSubgraph(batch: Int) throws(NetworkError) -> OpaquePointer {
        var sg: OpaquePointer?
        guard xnn_create_subgraph(4, 0, &sg) == xnn_status_success, let subgraph = sg else {
            throw NetworkError("xnn_create_subgraph failed")
        }
        var ok = false
        defer { if !ok { xnn_delete_subgraph(subgraph) } }

        func check(_ s: xnn_status, _ what: String) throws(NetworkError) {
            guard s == xnn_status_success else { throw NetworkError("defining \(what) failed (xnn_status \(s.rawValue))") }
        }
        func tensor(_ dims: [Int], data: UnsafeRawPointer? = nil, external: UInt32 = UInt32(XNN_INVALID_VALUE_ID),
                    flags: Int32 = 0, _ what: String) throws(NetworkError) -> UInt32 {
            var id: UInt32 = 0
            let sizes = dims.map { $0 }
            let status = sizes.withUnsafeBufferPointer {
                xnn_define_tensor_value(subgraph, xnn_datatype_fp32, sizes.count, $0.baseAddress, data, external, UInt32(flags), &id)
            }
            try check(status, what)
            return id
        }

        var size = EfficientNetLite0.inputSize
        func conv(_ c: Conv, input: UInt32, channelsIn: Int, external: UInt32 = UInt32(XNN_INVALID_VALUE_ID),
                  flags: Int32 = 0, _ name: String) throws(NetworkError) -> UInt32 {
            let pad = EfficientNetLiteGraph.samePadding(size: size, kernel: c.kernel, stride: c.stride)
            let wDims = c.depthwise ? [1, c.kernel, c.kernel, c.outChannels] : [c.outChannels, c.kernel, c.kernel, channelsIn]
            let wID = try tensor(wDims, data: c.weights, name + ".w")
            let bID = try tensor([c.outChannels], data: c.bias, name + ".b")
            let outID = try tensor([batch, pad.out, pad.out, c.outChannels], external: external, flags: flags, name)
            let (lo, hi): (Float, Float) = c.relu6 ? (0, 6) : (-.infinity, .infinity)
            let p0 = UInt32(pad.before), p1 = UInt32(pad.after), k = UInt32(c.kernel), s = UInt32(c.stride)
            let status = c.depthwise
                ? xnn_define_depthwise_convolution_2d(subgraph, p0, p1, p1, p0, k, k, s, s, 1, 1, 1, channelsIn,
                                                      lo, hi, input, wID, bID, outID, 0)
                : xnn_define_convolution_2d(subgraph, p0, p1, p1, p0, k, k, s, s, 1, 1, 1, channelsIn, c.outChannels,
                                            lo, hi, input, wID, bID, outID, 0)
            try check(status, name)
            size = pad.out
            return outID
        }

        let side = EfficientNetLite0.inputSize
        var x = try tensor([batch, side, side, 3], external: EfficientNetLiteGraph.inputID,
                           flags: XNN_VALUE_FLAG_EXTERNAL_INPUT, "input")
        x = try conv(stem, input: x, channelsIn: 3, "stem")
        for (i, b) in blocks.enumerated() {
            let blockInput = x
            var channels = b.depthwise.inChannels
            if let e = b.expand { x = try conv(e, input: x, channelsIn: e.inChannels, "b\(i).expand") }
            x = try conv(b.depthwise, input: x, channelsIn: b.depthwise.outChannels, "b\(i).dw")
            channels = b.depthwise.outChannels
            x = try conv(b.project, input: x, channelsIn: channels, "b\(i).project")
            if b.residual {
                let sum = try tensor([batch, size, size, b.project.outChannels], "b\(i).add")
                try check(xnn_define_add2(subgraph, -.infinity, .infinity, x, blockInput, sum, 0), "b\(i).add")
                x = sum
            }
        }
        x = try conv(head, input: x, channelsIn: head.inChannels, external: EfficientNetLiteGraph.headMapID,
                     flags: XNN_VALUE_FLAG_EXTERNAL_OUTPUT, "head")
        let c = EfficientNetLite0.headChannels
        let feature = try tensor([batch, 1, 1, c], external: EfficientNetLiteGraph.featureID,
                                 flags: XNN_VALUE_FLAG_EXTERNAL_OUTPUT, "feature")
        try check(xnn_define_global_average_pooling_2d(subgraph, -.infinity, .infinity, x, feature, 0), "pool")
        let fw = try tensor([EfficientNetLite0.classes, c], data: fcWeights, "fc.w")
        let fb = try tensor([EfficientNetLite0.classes], data: fcBias, "fc.b")
        let logits = try tensor([batch, EfficientNetLite0.classes], external: EfficientNetLiteGraph.logitsID,
                                flags: XNN_VALUE_FLAG_EXTERNAL_OUTPUT, "logits")
        try check(xnn_define_fully_connected(subgraph, -.infinity, .infinity, feature, fw, fb, logits,
                                             UInt32(XNN_FLAG_TENSORFLOW_RESHAPE_2D)), "fc")
        ok = true
        return subgraph
    }
}
