// SPDX-License-Identifier: MIT
/* A library for selfcheck_control's dlclose mode: loaded and unloaded by ld.so. */
int mmn_selfcheck_testlib_data[4096] = { 1 };

int mmn_selfcheck_testlib_fn(int x)
{
	return x + mmn_selfcheck_testlib_data[x & 4095];
}
