// Top-K selection: the k smallest distances out of n, in O(n log k) with a bounded max-heap (the
// seeds sorted everything with a bubble sort). Most candidates are rejected by one comparison with
// the current k-th best, so a scan over a million scores costs about as much as reading them.
import HeapModule

struct HeapEntry: Comparable {
    var distance: Float
    var index: Int
    // Ties broken by position so results are deterministic.
    static func < (a: HeapEntry, b: HeapEntry) -> Bool {
        a.distance != b.distance ? a.distance < b.distance : a.index < b.index
    }
}

enum TopK {
    /// Indices and values of the `k` smallest entries of `values`, ascending; entries for which
    /// `skip` returns true are ignored.
    static func smallest(_ values: UnsafeBufferPointer<Float>, k: Int, skip: ((Int) -> Bool)? = nil) -> [(index: Int, value: Float)] {
        guard k > 0 else { return [] }
        var heap = Heap<HeapEntry>()
        heap.reserveCapacity(k + 1)
        for i in 0..<values.count {
            let v = values[i]
            if v.isNaN { continue }
            if heap.count == k, let worst = heap.max, !(HeapEntry(distance: v, index: i) < worst) { continue }
            if let skip, skip(i) { continue }
            heap.insert(HeapEntry(distance: v, index: i))
            if heap.count > k { _ = heap.popMax() }
        }
        var out: [(index: Int, value: Float)] = []
        out.reserveCapacity(heap.count)
        while let e = heap.popMin() { out.append((e.index, e.distance)) }
        return out
    }
}
