#ifndef MOE_INSPECT_CHDF5_SHIM_H
#define MOE_INSPECT_CHDF5_SHIM_H
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

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

static inline void moe_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- Reading files that may be hostile (see HDF5File.swift) ---- */

static inline hid_t moe_h5p_link_access(void) { return H5P_LINK_ACCESS; }
static inline hid_t moe_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }

/* An external-link traversal callback that always refuses: a checkpoint never reads other files. */
static herr_t moe_refuse_external_link(const char *parent_file, const char *parent_group, const char *child_file,
                                       const char *child_object, unsigned *acc_flags, hid_t fapl, void *data) {
    (void)parent_file; (void)parent_group; (void)child_file; (void)child_object; (void)acc_flags; (void)fapl; (void)data;
    return -1;
}
/* A link (or dataset) access property list of class `cls` on which external links cannot be traversed. */
static inline hid_t moe_h5_access_without_external_links(hid_t cls) {
    hid_t p = H5Pcreate(cls);
    if (p < 0) return p;
    if (H5Pset_elink_cb(p, moe_refuse_external_link, NULL) < 0) { H5Pclose(p); return -1; }
    return p;
}

/* Kinds of link reported by moe_h5_list_links. */
enum { MOE_LINK_HARD = 0, MOE_LINK_SOFT = 1, MOE_LINK_EXTERNAL = 2, MOE_LINK_USER = 3, MOE_LINK_UNREADABLE = 4 };
/* Called for one link of a group with its name, kind and, for a soft link, its target path (`target`);
   for an external link, the object (`target`) and the file (`target_file`) it names. */
typedef int (*moe_link_cb)(const char *name, int kind, const char *target, const char *target_file, void *ctx);
struct moe_list_ctx { moe_link_cb cb; void *ctx; };
static herr_t moe_list_one_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    struct moe_list_ctx *c = (struct moe_list_ctx *)data;
    if (info->type == H5L_TYPE_HARD) return c->cb(name, MOE_LINK_HARD, NULL, NULL, c->ctx);
    if (info->type != H5L_TYPE_SOFT && info->type != H5L_TYPE_EXTERNAL) return c->cb(name, MOE_LINK_USER, NULL, NULL, c->ctx);
    size_t n = info->u.val_size;
    if (n == 0 || n > ((size_t)1 << 20)) return c->cb(name, MOE_LINK_UNREADABLE, NULL, NULL, c->ctx);
    char *buf = (char *)calloc(n + 1, 1);
    if (buf == NULL) return -1;
    int r;
    if (H5Lget_val(g, name, buf, n, H5P_DEFAULT) < 0) {
        r = c->cb(name, MOE_LINK_UNREADABLE, NULL, NULL, c->ctx);
    } else if (info->type == H5L_TYPE_SOFT) {
        r = c->cb(name, MOE_LINK_SOFT, buf, NULL, c->ctx);
    } else {
        unsigned flags = 0;
        const char *file = NULL, *object = NULL;
        if (H5Lunpack_elink_val(buf, n, &flags, &file, &object) < 0) r = c->cb(name, MOE_LINK_EXTERNAL, NULL, NULL, c->ctx);
        else r = c->cb(name, MOE_LINK_EXTERNAL, object, file, c->ctx);
    }
    free(buf);
    return r;
}
/* Lists the links of group `g` in name order (not recursively), without following any. A callback
   returning non-zero stops the listing. */
static inline herr_t moe_h5_list_links(hid_t g, moe_link_cb cb, void *ctx) {
    struct moe_list_ctx c = { cb, ctx };
    return H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, moe_list_one_link, &c);
}

/* The file number and address of an open object: equal for two identifiers of the same object. */
static inline int moe_h5_object_identity(hid_t obj, unsigned long long *fileno, unsigned long long *address) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    unsigned long long a = 0;
    memcpy(&a, &info.token, sizeof a < sizeof info.token ? sizeof a : sizeof info.token);
    *address = a;
#else
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_BASIC) < 0) return -1;
    *address = (unsigned long long)info.addr;
#endif
    *fileno = (unsigned long long)info.fileno;
    return 0;
}

/* Frees the variable-length data HDF5 allocated when reading `buf` with memory type `type`. */
static inline herr_t moe_h5_reclaim(hid_t type, hid_t space, void *buf) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
    return H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}
#endif
