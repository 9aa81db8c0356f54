// Preprocessing is the single place that describes how an image becomes the network's input. It
// owns the constants and the last step (pixels -> float tensor); the geometry is done by the decoder
// (Decode/ImageDecoder, with libvips shrink-on-load) and is documented here:
//
//   1. decode, apply the EXIF orientation, convert to sRGB 8-bit RGB (alpha dropped);
//   2. resize so the SHORTER side is `resizeShortSide` (256) px, the longer side becomes
//      floor(long * 256 / short + 0.5), antialiased (bilinear/triangle) downscaling;
//   3. centre crop `inputSize` x `inputSize` (224) at left = (W - 224) / 2, top = (H - 224) / 2;
//   4. x = (pixel - 127) / 128 per channel, float32, RGB, NHWC [N, 224, 224, 3]  <- `tensor(from:into:)`.
//
// This matches the reference (peer.py: Pillow BILINEAR with reducing_gap=None); different JPEG
// decoders/resamplers differ by a few levels per pixel, which moves features only slightly.
// `InputGeometry.whole` replaces steps 2-3 by one resize of the whole image to 224 x 224 (aspect
// ratio not kept): the network then sees the edges the centre crop cuts off, which retrieves better
// (docs/retrieval-quality.md); the reference geometry stays for the reference's descriptor.
public enum Preprocessing {
    public static let inputSize = 224, resizeShortSide = 256
    public static let mean: Float = 127, scale: Float = 128
    public static let pixelCount = inputSize * inputSize * 3

    /// Writes (p - 127) / 128 for the 224x224x3 RGB8 (HWC) `pixels` into `into` (224*224*3 floats).
    public static func tensor(from pixels: [UInt8], into: UnsafeMutablePointer<Float>) {
        let n = min(pixels.count, pixelCount)
        let inv = 1 / scale
        pixels.withUnsafeBufferPointer { src in
            for i in 0..<n { into[i] = (Float(src[i]) - mean) * inv }
        }
        if n < pixelCount { (into + n).update(repeating: 0, count: pixelCount - n) }
    }
}

/// How the decoded image is fitted into the network's square input.
public enum InputGeometry: Sendable, Equatable {
    /// The reference's: shorter side 256, centre crop 224 x 224.
    case centreCrop
    /// The whole image resized to 224 x 224, its aspect ratio not kept.
    case whole

    /// The decoder shim's `shortSide` argument (lk_vips.h: negative means stretch to the square).
    var shortSideArgument: Int32 {
        switch self {
        case .centreCrop: Int32(Preprocessing.resizeShortSide)
        case .whole: -Int32(Preprocessing.inputSize)
        }
    }
}
