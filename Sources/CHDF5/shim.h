#ifndef MOE_INSPECT_CHDF5_SHIM_H
#define MOE_INSPECT_CHDF5_SHIM_H
#include <hdf5.h>

/* HDF5's type and property identifiers are macros over globals that Swift cannot import. */
static inline unsigned moe_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned moe_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t moe_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t moe_h5s_all(void) { return H5S_ALL; }
static inline hid_t moe_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t moe_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t moe_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t moe_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t moe_h5t_ieee_f16le(void) {
    /* h5py's float16: IEEE half precision, little-endian. */
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}
static inline hid_t moe_h5t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t moe_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t moe_h5t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t moe_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t moe_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t moe_h5t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t moe_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t moe_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t moe_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t moe_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t moe_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t moe_h5e_default(void) { return H5E_DEFAULT; }
static inline size_t moe_h5t_variable(void) { return H5T_VARIABLE; }

/* Visits every dataset below `loc` (hard links only), calling `cb` with its path. */
typedef int (*moe_dataset_cb)(const char *path, void *ctx);
struct moe_visit_ctx { moe_dataset_cb cb; void *ctx; };
static herr_t moe_visit_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    struct moe_visit_ctx *c = (struct moe_visit_ctx *)data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) return 0;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    if (t == H5I_DATASET) return c->cb(name, c->ctx);
    return 0;
}
static inline herr_t moe_h5_visit_datasets(hid_t loc, moe_dataset_cb cb, void *ctx) {
    struct moe_visit_ctx c = { cb, ctx };
    return H5Lvisit(loc, H5_INDEX_NAME, H5_ITER_INC, moe_visit_link, &c);
}
static inline void moe_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
