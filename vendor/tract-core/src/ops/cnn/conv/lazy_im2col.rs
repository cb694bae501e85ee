use crate::internal::*;
use crate::ops::matmul::pack::DynPackedExoticFact;
use std::fmt::{Debug, Display};
use std::ops::Range;
use tract_linalg::WeightType;
use tract_linalg::mmm::{MMMInputFormat, MMMInputValue, PackedMatrixStorage};
use tract_linalg::pack::{PackedFormat, PackedI8K4, PackingWriter};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LazyIm2colParams {
    pub packer: PackedFormat,
    /// The SDOT kernels' packing (four consecutive k per lane) when the matrix
    /// product takes it; `packer` then only carries the panel width and type.
    pub k4: Option<PackedI8K4>,
    /// With `k4`, gather a panel whose lanes are one input row apart by 1 or
    /// 2 bytes with NEON (aarch64) instead of byte by byte. Off, the scalar
    /// gather runs everywhere: the two must agree bit for bit.
    pub k4_simd: bool,
    pub n_byte_offsets: Vec<isize>,
    pub k_byte_offsets: Vec<isize>,
}

impl MMMInputFormat for LazyIm2colParams {
    fn r(&self) -> usize {
        self.packer.r
    }

    fn precursor(&self) -> WeightType {
        self.packer.precursor()
    }

    fn prepare_tensor(&self, _t: &Tensor, _k_axis: usize, _mn_axis: usize) -> TractResult<Tensor> {
        bail!("Unexpected call to prepare_tensor on LazyIm2Col")
    }

    fn k_alignment(&self) -> usize {
        1
    }

    fn mem_size(&self, k: TDim, mn: TDim) -> TDim {
        k * mn * self.packer.dt.size_of()
    }

    fn extract_at_mn_f16(
        &self,
        _data: &tract_linalg::mmm::EagerPackedInput,
        _mn: usize,
        _slice: &mut [f16],
    ) -> TractResult<()> {
        unimplemented!()
    }
    fn extract_at_mn_f32(
        &self,
        _data: &tract_linalg::mmm::EagerPackedInput,
        _mn: usize,
        _slice: &mut [f32],
    ) -> TractResult<()> {
        unimplemented!()
    }

    fn prepare_one_view(
        &self,
        _t: &TensorView,
        _k_axis: usize,
        _mn_axis: usize,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        bail!("Unexpected call to prepare_one_view on LazyIm2Col")
    }

    fn prepare_one(
        &self,
        _t: &Tensor,
        _k_axis: usize,
        _mn_axis: usize,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        bail!("Unexpected call to prepare_one on LazyIm2Col")
    }
}

impl LazyIm2colParams {
    /// The packing the matrix product sees.
    fn matmul_format(&self) -> &dyn MMMInputFormat {
        match &self.k4 {
            Some(k4) => k4,
            None => self,
        }
    }
}

impl Display for LazyIm2colParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyIm2Col")
    }
}

impl ExoticFact for LazyIm2colParams {
    fn buffer_sizes(&self) -> TVec<TDim> {
        tvec!(MMMInputFormat::mem_size(
            self,
            self.k_byte_offsets.len().to_dim(),
            self.n_byte_offsets.len().to_dim(),
        ))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LazyIm2Col {
    pub params: Arc<LazyIm2colParams>,
    /// Number of groups for grouped convolution (1 if ungrouped). The output is then a
    /// `[1, group]`-batched packed tensor; each group reads from a different slice of the
    /// input via a per-group offset of `g * ci_per_group * c_stride * size_of`.
    pub group: usize,
    /// Byte stride between consecutive groups in the input tensor's flat byte buffer.
    /// Equal to `ci_per_group * c_stride * size_of(input)`. Unused (0) when `group == 1`.
    pub group_stride_bytes: isize,
}

impl Op for LazyIm2Col {
    fn name(&self) -> StaticName {
        "LazyIm2col".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LazyIm2Col {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let tensor = args_1!(inputs);
        let dt = tensor.datum_type();
        let mut values: TVec<Box<dyn MMMInputValue>> = TVec::with_capacity(self.group);
        for g in 0..self.group {
            let group_offset_bytes = g as isize * self.group_stride_bytes;
            values.push(Box::new(LazyIm2colInput {
                tensor: tensor.clone(),
                im2col: self.params.clone(),
                group_offset_bytes,
                k4_panels: std::sync::OnceLock::new(),
            }));
        }
        let output = PackedMatrixStorage::new_batched(&[1, self.group], values).into_tensor(dt);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for LazyIm2Col {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let exotic_fact = DynPackedExoticFact {
            k: self.params.k_byte_offsets.len().to_dim(),
            mn: self.params.n_byte_offsets.len().to_dim(),
            packers: vec![match &self.params.k4 {
                Some(k4) => Box::new(k4.clone()) as Box<dyn MMMInputFormat>,
                None => Box::new(self.params.packer.clone()) as Box<dyn MMMInputFormat>,
            }],
        };
        Ok(tvec!(inputs[0].datum_type.fact([1, self.group]).with_exotic_fact(exotic_fact)))
    }

    as_op!();
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LazyIm2colInput {
    tensor: TValue,
    im2col: Arc<LazyIm2colParams>,
    /// Per-group base byte offset added to every gather. For group g this is
    /// `g * ci_per_group * c_stride * size_of(input)`. Zero for ungrouped convs.
    group_offset_bytes: isize,
    /// With the four-k packing: every column panel, gathered once on the first
    /// request. The SDOT kernels take that packing on both sides, so
    /// tract-linalg sees no eager operand and walks the row panels outside
    /// (`FusedSpec::prefer_col_outer`): without this, each column panel would
    /// be gathered again for every row panel.
    k4_panels: std::sync::OnceLock<Blob>,
}

impl Display for LazyIm2colInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Hash for LazyIm2colInput {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.tensor.as_bytes(), &self.im2col, self.group_offset_bytes).hash(state);
    }
}

unsafe impl Send for LazyIm2colInput {}
unsafe impl Sync for LazyIm2colInput {}

impl LazyIm2colInput {
    fn input_8n<T: Datum + Copy>(
        &self,
        writer: &mut impl PackingWriter<T>,
        k_range: Range<isize>,
        n: isize,
    ) {
        let k_byte_offsets = self.im2col.k_byte_offsets.as_ptr();
        let n_byte_offsets = self.im2col.n_byte_offsets.as_ptr();
        unsafe {
            let ptr = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let o1 = *n_byte_offsets.offset(n);
            let o2 = *n_byte_offsets.offset(n + 1);
            let o3 = *n_byte_offsets.offset(n + 2);
            let o4 = *n_byte_offsets.offset(n + 3);
            let o5 = *n_byte_offsets.offset(n + 4);
            let o6 = *n_byte_offsets.offset(n + 5);
            let o7 = *n_byte_offsets.offset(n + 6);
            let o8 = *n_byte_offsets.offset(n + 7);
            for k in k_range.start..k_range.end {
                let ptr = ptr.offset(*k_byte_offsets.offset(k));
                let v1 = *(ptr.offset(o1) as *const T);
                let v2 = *(ptr.offset(o2) as *const T);
                let v3 = *(ptr.offset(o3) as *const T);
                let v4 = *(ptr.offset(o4) as *const T);
                let v5 = *(ptr.offset(o5) as *const T);
                let v6 = *(ptr.offset(o6) as *const T);
                let v7 = *(ptr.offset(o7) as *const T);
                let v8 = *(ptr.offset(o8) as *const T);
                writer.write(v1);
                writer.write(v2);
                writer.write(v3);
                writer.write(v4);
                writer.write(v5);
                writer.write(v6);
                writer.write(v7);
                writer.write(v8);
            }
        }
    }

    fn input_6n<T: Datum + Copy>(
        &self,
        writer: &mut impl PackingWriter<T>,
        k_range: Range<isize>,
        n: isize,
    ) {
        unsafe {
            let ptr = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let k_byte_offsets = self.im2col.k_byte_offsets.as_ptr();
            let n_byte_offsets = self.im2col.n_byte_offsets.as_ptr();
            let o1 = *n_byte_offsets.offset(n);
            let o2 = *n_byte_offsets.offset(n + 1);
            let o3 = *n_byte_offsets.offset(n + 2);
            let o4 = *n_byte_offsets.offset(n + 3);
            let o5 = *n_byte_offsets.offset(n + 4);
            let o6 = *n_byte_offsets.offset(n + 5);
            for k in k_range.start..k_range.end {
                let ptr = ptr.offset(*k_byte_offsets.offset(k));
                let v1 = *(ptr.offset(o1) as *const T);
                let v2 = *(ptr.offset(o2) as *const T);
                let v3 = *(ptr.offset(o3) as *const T);
                let v4 = *(ptr.offset(o4) as *const T);
                let v5 = *(ptr.offset(o5) as *const T);
                let v6 = *(ptr.offset(o6) as *const T);
                writer.write(v1);
                writer.write(v2);
                writer.write(v3);
                writer.write(v4);
                writer.write(v5);
                writer.write(v6);
            }
        }
    }

    fn input_4n<T: Datum + Copy>(
        &self,
        writer: &mut impl PackingWriter<T>,
        k_range: Range<isize>,
        n: isize,
    ) {
        unsafe {
            let ptr = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let k_byte_offsets = self.im2col.k_byte_offsets.as_ptr();
            let n_byte_offsets = self.im2col.n_byte_offsets.as_ptr();
            let o1 = *n_byte_offsets.offset(n);
            let o2 = *n_byte_offsets.offset(n + 1);
            let o3 = *n_byte_offsets.offset(n + 2);
            let o4 = *n_byte_offsets.offset(n + 3);
            for k in k_range.start..k_range.end {
                let ptr = ptr.offset(*k_byte_offsets.offset(k));
                let v1 = *(ptr.offset(o1) as *const T);
                let v2 = *(ptr.offset(o2) as *const T);
                let v3 = *(ptr.offset(o3) as *const T);
                let v4 = *(ptr.offset(o4) as *const T);
                writer.write(v1);
                writer.write(v2);
                writer.write(v3);
                writer.write(v4);
            }
        }
    }

    fn input_2n<T: Datum + Copy>(
        &self,
        writer: &mut impl PackingWriter<T>,
        k_range: Range<isize>,
        n: isize,
    ) {
        unsafe {
            let ptr = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let k_byte_offsets = self.im2col.k_byte_offsets.as_ptr();
            let n_byte_offsets = self.im2col.n_byte_offsets.as_ptr();
            let o1 = *n_byte_offsets.offset(n);
            let o2 = *n_byte_offsets.offset(n + 1);
            for k in k_range.start..k_range.end {
                let ptr = ptr.offset(*k_byte_offsets.offset(k));
                let v1 = *(ptr.offset(o1) as *const T);
                let v2 = *(ptr.offset(o2) as *const T);
                writer.write(v1);
                writer.write(v2);
            }
        }
    }

    fn write<T: Datum + Copy>(
        &self,
        writer: &mut impl PackingWriter<T>,
        k_range: std::ops::Range<isize>,
        mn_range: std::ops::Range<isize>,
    ) {
        let mn_end = mn_range.end.min(self.im2col.n_byte_offsets.len() as isize);
        let n_range = mn_range.start..mn_end;
        match n_range.len() {
            8 => return self.input_8n(writer, k_range, n_range.start),
            6 => return self.input_6n(writer, k_range, n_range.start),
            4 => return self.input_4n(writer, k_range, n_range.start),
            2 => return self.input_2n(writer, k_range, n_range.start),
            _ => (),
        }
        unsafe {
            let ptr = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let k_byte_offsets = self.im2col.k_byte_offsets.as_ptr();
            let n_byte_offsets = self.im2col.n_byte_offsets.as_ptr();
            for k in k_range.start..k_range.end {
                let ptr = ptr.offset(*k_byte_offsets.offset(k));
                let mut n = n_range.start;
                while n + 8 <= n_range.end {
                    let o1 = *n_byte_offsets.offset(n);
                    let o2 = *n_byte_offsets.offset(n + 1);
                    let o3 = *n_byte_offsets.offset(n + 2);
                    let o4 = *n_byte_offsets.offset(n + 3);
                    let o5 = *n_byte_offsets.offset(n + 4);
                    let o6 = *n_byte_offsets.offset(n + 5);
                    let o7 = *n_byte_offsets.offset(n + 6);
                    let o8 = *n_byte_offsets.offset(n + 7);
                    let v1 = *(ptr.offset(o1) as *const T);
                    let v2 = *(ptr.offset(o2) as *const T);
                    let v3 = *(ptr.offset(o3) as *const T);
                    let v4 = *(ptr.offset(o4) as *const T);
                    let v5 = *(ptr.offset(o5) as *const T);
                    let v6 = *(ptr.offset(o6) as *const T);
                    let v7 = *(ptr.offset(o7) as *const T);
                    let v8 = *(ptr.offset(o8) as *const T);
                    writer.write(v1);
                    writer.write(v2);
                    writer.write(v3);
                    writer.write(v4);
                    writer.write(v5);
                    writer.write(v6);
                    writer.write(v7);
                    writer.write(v8);
                    n += 8;
                }
                while n + 6 <= n_range.end {
                    let o1 = *n_byte_offsets.offset(n);
                    let o2 = *n_byte_offsets.offset(n + 1);
                    let o3 = *n_byte_offsets.offset(n + 2);
                    let o4 = *n_byte_offsets.offset(n + 3);
                    let o5 = *n_byte_offsets.offset(n + 4);
                    let o6 = *n_byte_offsets.offset(n + 5);
                    let v1 = *(ptr.offset(o1) as *const T);
                    let v2 = *(ptr.offset(o2) as *const T);
                    let v3 = *(ptr.offset(o3) as *const T);
                    let v4 = *(ptr.offset(o4) as *const T);
                    let v5 = *(ptr.offset(o5) as *const T);
                    let v6 = *(ptr.offset(o6) as *const T);
                    writer.write(v1);
                    writer.write(v2);
                    writer.write(v3);
                    writer.write(v4);
                    writer.write(v5);
                    writer.write(v6);
                    n += 6;
                }
                while n + 4 <= n_range.end {
                    let o1 = *n_byte_offsets.offset(n);
                    let o2 = *n_byte_offsets.offset(n + 1);
                    let o3 = *n_byte_offsets.offset(n + 2);
                    let o4 = *n_byte_offsets.offset(n + 3);
                    let v1 = *(ptr.offset(o1) as *const T);
                    let v2 = *(ptr.offset(o2) as *const T);
                    let v3 = *(ptr.offset(o3) as *const T);
                    let v4 = *(ptr.offset(o4) as *const T);
                    writer.write(v1);
                    writer.write(v2);
                    writer.write(v3);
                    writer.write(v4);
                    n += 4;
                }
                while n < n_range.end {
                    let o1 = *n_byte_offsets.offset(n);
                    let v1 = *(ptr.offset(o1) as *const T);
                    writer.write(v1);
                    n += 1;
                }
            }
        }
    }
}

impl MMMInputValue for LazyIm2colInput {
    fn scratch_panel_buffer_layout(&self) -> Option<std::alloc::Layout> {
        let k = self.im2col.k_byte_offsets.len();
        if let Some(k4) = &self.im2col.k4 {
            return std::alloc::Layout::from_size_align(k4.single_panel_len(k), k4.alignment())
                .ok();
        }
        Some(self.im2col.packer.single_panel_layout(k, self.tensor.datum_type().size_of()))
    }

    fn panel_bytes(&self, i: usize, buffer: Option<*mut u8>) -> TractResult<*const u8> {
        Ok(dispatch_copy!(Self::do_panel(self.tensor.datum_type())(self, i, buffer)))
    }

    fn k(&self) -> usize {
        self.im2col.k_byte_offsets.len()
    }

    fn mn(&self) -> usize {
        self.im2col.n_byte_offsets.len()
    }

    fn format(&self) -> &dyn MMMInputFormat {
        self.im2col.matmul_format()
    }

    fn exotic_fact(&self) -> &dyn ExoticFact {
        &*self.im2col
    }
    fn extract_at_mn_f16(&self, _mn: usize, _slice: &mut [f16]) -> TractResult<()> {
        unimplemented!()
    }
    fn extract_at_mn_f32(&self, _mn: usize, _slice: &mut [f32]) -> TractResult<()> {
        unimplemented!()
    }
}

impl LazyIm2colInput {
    fn do_panel<T: Datum + Copy>(&self, i: usize, buffer: Option<*mut u8>) -> *const u8 {
        let r = self.im2col.packer.r;
        let mn_start = i * r;
        let mn_end = (mn_start + self.im2col.packer.r).min(self.im2col.n_byte_offsets.len());
        let k = self.im2col.k_byte_offsets.len();
        let mn_range = mn_start as isize..mn_end as isize;
        let k_range = 0..k as isize;
        if let Some(k4) = &self.im2col.k4 {
            let all = self.k4_panels.get_or_init(|| self.gather_k4(k4));
            // SAFETY: `gather_k4` made `mn.div_ceil(r)` panels of
            // `single_panel_len(k)` bytes, and `i` is one of them.
            return unsafe { all.as_ptr().add(i * k4.single_panel_len(k)) };
        }
        let packed = buffer.unwrap();
        if mn_range.len() == r && mn_start.is_multiple_of(r) {
            let mut writer = self.im2col.packer.write_single_panel_with_k_outer(packed as *mut T);
            self.write(&mut writer, k_range, mn_range);
        } else {
            let mut writer = self.im2col.packer.write_with_k_outer(
                packed as *mut T,
                k_range.len(),
                mn_range.len(),
            );
            self.write(&mut writer, k_range, mn_range);
        }
        packed
    }
}

impl LazyIm2colInput {
    /// Every column panel in the SDOT kernels' packing: for each group of four
    /// k, each lane's four bytes side by side (`PackedI8K4::pack_view`'s
    /// layout). The rows past k up to a multiple of four, and the lanes past
    /// mn in the last panel, are zero (they meet the weights' zero padding).
    fn gather_k4(&self, k4: &PackedI8K4) -> Blob {
        let k_offsets = &self.im2col.k_byte_offsets;
        let n_offsets = &self.im2col.n_byte_offsets;
        let (k, mn, r) = (k_offsets.len(), n_offsets.len(), k4.r);
        let panel_len = k4.single_panel_len(k);
        let panels = mn.div_ceil(r);
        // SAFETY: the size is panels * panel_len (as `PackedI8K4::len`), the
        // alignment the packing's own; every byte is written below.
        let mut blob =
            unsafe { Blob::new_for_size_and_align(panels * panel_len, k4.alignment()) };
        let src_len = self.tensor.len() as isize * self.tensor.datum_type().size_of() as isize
            - self.group_offset_bytes;
        let k_min = k_offsets.iter().copied().min().unwrap_or(0);
        let k_max = k_offsets.iter().copied().max().unwrap_or(0);
        // SAFETY: the offsets are the convolution's own, computed over the
        // padded input this op receives, so every `n + k` offset is in the
        // tensor; a NEON load reads past its last lane only where
        // `k4_panel_neon` checks the bytes are there (`src_len`).
        unsafe {
            let src = self.tensor.as_ptr_unchecked::<u8>().offset(self.group_offset_bytes);
            let dst = blob.as_bytes_mut().as_mut_ptr();
            for p in 0..panels {
                let lanes = &n_offsets[p * r..((p + 1) * r).min(mn)];
                let out = dst.add(p * panel_len);
                if self.im2col.k4_simd
                    && k4_panel_neon(src, src_len, lanes, k_offsets, k_min..k_max, r, out)
                {
                    continue;
                }
                k4_panel_scalar(src, lanes, k_offsets, r, out);
            }
        }
        blob
    }
}

/// One K4 panel, byte by byte: `out[(k / 4) * r * 4 + lane * 4 + k % 4] =
/// src[lanes[lane] + k_offsets[k]]`, zero past k and past `lanes`. The scalar
/// twin of `k4_panel_neon`.
///
/// # Safety
/// Every `src + lanes[l] + k_offsets[k]` is readable; `out` holds
/// `k.div_ceil(4) * 4 * r` bytes.
unsafe fn k4_panel_scalar(
    src: *const u8,
    lanes: &[isize],
    k_offsets: &[isize],
    r: usize,
    out: *mut u8,
) {
    let k = k_offsets.len();
    unsafe {
        for kb in 0..k.div_ceil(4) {
            let row = out.add(kb * r * 4);
            let k0 = kb * 4;
            if k0 + 4 <= k {
                let (o0, o1, o2, o3) =
                    (k_offsets[k0], k_offsets[k0 + 1], k_offsets[k0 + 2], k_offsets[k0 + 3]);
                for (lane, &n) in lanes.iter().enumerate() {
                    let p = src.offset(n);
                    let d = row.add(lane * 4);
                    *d = *p.offset(o0);
                    *d.add(1) = *p.offset(o1);
                    *d.add(2) = *p.offset(o2);
                    *d.add(3) = *p.offset(o3);
                }
            } else {
                for (lane, &n) in lanes.iter().enumerate() {
                    let p = src.offset(n);
                    for i in 0..4 {
                        *row.add(lane * 4 + i) =
                            if k0 + i < k { *p.offset(k_offsets[k0 + i]) } else { 0 };
                    }
                }
            }
            std::ptr::write_bytes(row.add(lanes.len() * 4), 0, (r - lanes.len()) * 4);
        }
    }
}

/// One K4 panel of eight lanes whose input bytes are 1 or 2 apart (lanes in
/// one output row, stride 1 or 2): per group of four k, four 8-byte loads
/// (de-interleaving ones for stride 2) and two zips transpose them into the
/// lanes' four-byte groups. Returns false, having written nothing, for any
/// other panel, or where a stride-2 load would read past the input.
///
/// # Safety
/// As `k4_panel_scalar`; `src_len` is the number of bytes readable at `src`.
#[cfg(target_arch = "aarch64")]
unsafe fn k4_panel_neon(
    src: *const u8,
    src_len: isize,
    lanes: &[isize],
    k_offsets: &[isize],
    k_span: Range<isize>,
    r: usize,
    out: *mut u8,
) -> bool {
    if r != 8 || lanes.len() != 8 {
        return false;
    }
    let n0 = lanes[0];
    let stride = lanes[1] - n0;
    if !(stride == 1 || stride == 2) || (2..8).any(|l| lanes[l] != n0 + l as isize * stride) {
        return false;
    }
    // vld1_u8 reads the 8 lanes' bytes; vld2_u8 reads 16, one past lane 7.
    if n0 + k_span.start < 0 || n0 + k_span.end + 8 * stride > src_len {
        return false;
    }
    // SAFETY: checked just above: every load stays inside the `src_len`
    // bytes at `src`.
    unsafe {
        if stride == 1 {
            k4_rows_neon::<1>(src.offset(n0), k_offsets, out)
        } else {
            k4_rows_neon::<2>(src.offset(n0), k_offsets, out)
        }
    }
    true
}

/// The transposition behind `k4_panel_neon`, for lanes `S` bytes apart.
///
/// # Safety
/// `base + k_offsets[k] .. + 8 * S` is readable for every k; `out` holds
/// `k.div_ceil(4) * 32` bytes.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn k4_rows_neon<const S: usize>(base: *const u8, k_offsets: &[isize], out: *mut u8) {
    use std::arch::aarch64::*;
    let k = k_offsets.len();
    unsafe {
        let load = |o: isize| -> uint8x8_t {
            if S == 1 { vld1_u8(base.offset(o)) } else { vld2_u8(base.offset(o)).0 }
        };
        for kb in 0..k.div_ceil(4) {
            let k0 = kb * 4;
            let (r0, r1, r2, r3) = if k0 + 4 <= k {
                (
                    load(k_offsets[k0]),
                    load(k_offsets[k0 + 1]),
                    load(k_offsets[k0 + 2]),
                    load(k_offsets[k0 + 3]),
                )
            } else {
                let row = |i: usize| if k0 + i < k { load(k_offsets[k0 + i]) } else { vdup_n_u8(0) };
                (row(0), row(1), row(2), row(3))
            };
            // r0[l] r1[l] interleaved, then pairs of those: lane l's four
            // bytes side by side, lanes 0-3 in the low store, 4-7 the high.
            let x01 = vreinterpretq_u16_u8(vzip1q_u8(vcombine_u8(r0, r0), vcombine_u8(r1, r1)));
            let x23 = vreinterpretq_u16_u8(vzip1q_u8(vcombine_u8(r2, r2), vcombine_u8(r3, r3)));
            let d = out.add(kb * 32);
            vst1q_u8(d, vreinterpretq_u8_u16(vzip1q_u16(x01, x23)));
            vst1q_u8(d.add(16), vreinterpretq_u8_u16(vzip2q_u16(x01, x23)));
        }
    }
}

/// No NEON here: the scalar gather runs.
#[cfg(not(target_arch = "aarch64"))]
unsafe fn k4_panel_neon(
    _src: *const u8,
    _src_len: isize,
    _lanes: &[isize],
    _k_offsets: &[isize],
    _k_span: Range<isize>,
    _r: usize,
    _out: *mut u8,
) -> bool {
    false
}
