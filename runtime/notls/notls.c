/*
 * notls.c - the GnuTLS entry points of Debian's libmicrohttpd.a, for a
 * server that never serves TLS.
 *
 * Knative's queue-proxy (or the mesh, or the ingress) terminates TLS in
 * front of a function, so the runtime never asks libmicrohttpd for it
 * (server.c sets no MHD_USE_TLS).  Debian builds libmicrohttpd with
 * HTTPS support, and its shared library therefore loads GnuTLS and eight
 * more libraries at every start: about 1 ms of exec time (half of a C
 * function's cold start) and 2.4 MiB of resident memory, for code that is
 * never run.  The build links libmicrohttpd.a instead, with these
 * stand-ins for the GnuTLS symbols it references.
 *
 * gnutls_global_init and gnutls_global_deinit are what libmicrohttpd
 * calls unconditionally (from its constructor and destructor): they
 * succeed and do nothing.  Every other entry point is reached only by a
 * daemon started with MHD_USE_TLS: it fails with
 * GNUTLS_E_UNIMPLEMENTED_FEATURE, so such a daemon would refuse to start
 * rather than serve without TLS.  The list is libmicrohttpd 0.9.75's
 * (`nm -u libmicrohttpd.a | grep gnutls_`); a symbol missing from it
 * fails the link, it cannot go unnoticed.  The stand-ins ignore their
 * arguments, which the C calling convention allows.
 */

#define NOTLS_UNIMPLEMENTED (-1250) /* GNUTLS_E_UNIMPLEMENTED_FEATURE */

int gnutls_global_init(void);
void gnutls_global_deinit(void);

int
gnutls_global_init(void)
{
	return 0;
}

void
gnutls_global_deinit(void)
{
}

#define NOTLS(name)                                                            \
	long name(void);                                                       \
	long name(void)                                                        \
	{                                                                      \
		return NOTLS_UNIMPLEMENTED;                                    \
	}

NOTLS(gnutls_alpn_set_protocols)
NOTLS(gnutls_bye)
NOTLS(gnutls_certificate_allocate_credentials)
NOTLS(gnutls_certificate_free_credentials)
NOTLS(gnutls_certificate_server_set_request)
NOTLS(gnutls_certificate_set_dh_params)
NOTLS(gnutls_certificate_set_retrieve_function2)
NOTLS(gnutls_certificate_set_retrieve_function3)
NOTLS(gnutls_certificate_set_x509_key_mem)
NOTLS(gnutls_certificate_set_x509_key_mem2)
NOTLS(gnutls_certificate_set_x509_trust_mem)
NOTLS(gnutls_cipher_get)
NOTLS(gnutls_credentials_set)
NOTLS(gnutls_deinit)
NOTLS(gnutls_dh_params_deinit)
NOTLS(gnutls_dh_params_import_pkcs3)
NOTLS(gnutls_dh_params_init)
NOTLS(gnutls_handshake)
NOTLS(gnutls_init)
NOTLS(gnutls_malloc)
NOTLS(gnutls_priority_deinit)
NOTLS(gnutls_priority_init)
NOTLS(gnutls_priority_set)
NOTLS(gnutls_protocol_get_version)
NOTLS(gnutls_psk_allocate_server_credentials)
NOTLS(gnutls_psk_free_server_credentials)
NOTLS(gnutls_psk_set_server_credentials_function)
NOTLS(gnutls_record_check_pending)
NOTLS(gnutls_record_get_direction)
NOTLS(gnutls_record_recv)
NOTLS(gnutls_record_send)
NOTLS(gnutls_session_get_ptr)
NOTLS(gnutls_session_set_ptr)
NOTLS(gnutls_strerror)
NOTLS(gnutls_transport_set_int2)
