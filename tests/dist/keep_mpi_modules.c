/* Sanitizer builds only (linked into the tests/dist programs): OpenMPI unloads its plugins
 * (mca_*.so) in MPI_Finalize, after which LeakSanitizer reports their allocations as coming from
 * "<unknown module>" and no suppression can name them. Keeping every library loaded (dlclose
 * does nothing) lets tests/lsan.supp suppress OpenMPI's own allocations by library name, and
 * nothing else. */
int dlclose(void *handle);
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
