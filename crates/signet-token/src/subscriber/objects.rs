//! The subscriber's token: keys, requests and certificates on the token.

use super::*;

/// A logged-in read-write session on the subscriber's token.
pub struct TokenSession {
    /// The token as [`Pkcs11Signer`] finds it; the key label is filled in per key.
    pub(super) config: Pkcs11KeyConfig,
    pub(super) session: Session,
    /// Whether the module is Yubico's ykcs11, which maps `CKA_ID` to PIV slots.
    pub(super) piv: bool,
}

impl fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSession").field("token", &self.config.token_label).finish_non_exhaustive()
    }
}

/// An RSA-2048 key pair on the token whose private half can only unwrap (sensitive, not
/// extractable, `CKA_UNWRAP` true, `CKA_DECRYPT` false): what the server wraps a generated
/// encryption key for. Either session-only ([`TokenSession::generate_transport_key`]) or kept
/// on the token until the encryption key is installed ([`TokenSession::transport_key`]);
/// [`TokenSession::install_encryption_key`] destroys it.
pub struct TransportKey {
    public: Option<ObjectHandle>,
    private: ObjectHandle,
    spki: Vec<u8>,
    /// A token object, kept when installing fails so that the server's next answer unwraps.
    persistent: bool,
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportKey").finish_non_exhaustive()
    }
}

impl TransportKey {
    /// The public key as a DER SubjectPublicKeyInfo, to send to the server.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
}

/// An identity key pair on the token: its label and `CKA_ID`, and a signer for it.
pub struct IdentityKey {
    signer: Pkcs11Signer,
    id: Vec<u8>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("label", &self.signer.key_label())
            .field("id", &hex::encode(&self.id))
            .field("algorithm", &self.signer.algorithm())
            .finish()
    }
}

impl IdentityKey {
    /// The `CKA_ID` the private key, the public key and the certificate share.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The `CKA_LABEL`.
    pub fn label(&self) -> &str {
        self.signer.key_label()
    }

    /// The key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.signer.algorithm()
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self) -> &[u8] {
        self.signer.public_key_spki()
    }

    /// A PKCS#10 request for this key, signed on the token: the CA's proof that the
    /// applicant holds the private key. The subject is `CN=<label>`; the CA ignores it and
    /// writes the vetted subject.
    pub fn certificate_request(&self) -> Result<Vec<u8>, TokenError> {
        certification_request(&self.signer, self.label())
    }

    /// Signs `message` with the key on the token (RSA PKCS#1 v1.5 or ECDSA, SHA-256 for
    /// RSA-2048 and P-256), as a renewal's proof of holding the key being replaced.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.signer.sign(message).map_err(|e| TokenError::Device(e.to_string()))
    }
}

impl TokenSession {
    /// Generates an identity (signature and authentication) key pair on the token, labelled
    /// `label` with a random 16-byte `CKA_ID`: private, sensitive, never extractable, and
    /// allowed to sign only (DESIGN §2: signing keys are never escrowed, so they are born on
    /// the token and never leave it). The new key signs a self-test before it is returned.
    ///
    /// A key pair labelled `label` left without a certificate by an interrupted retrieval is
    /// removed first; one that has its certificate is kept and refused as
    /// [`TokenError::KeyExists`].
    pub fn generate_identity_key(&self, algorithm: KeyAlgorithm, label: &str) -> Result<IdentityKey, TokenError> {
        if !SUBSCRIBER_KEYS.contains(&algorithm) {
            return Err(TokenError::UnsupportedKey(format!("{algorithm} (use rsa-2048 or p-256)")));
        }
        self.remove_unfinished(label)?;
        let config = Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() };
        // ykcs11 puts the key in the PIV slot its CKA_ID names (ignoring the label): 9a, PIV
        // Authentication, is the one for an identity key, and the one it attests.
        let id = if self.piv { vec![PIV_AUTHENTICATION_ID] } else { random_id()? };
        let signer = Pkcs11Signer::generate_with_id(&config, algorithm, id.clone())?;
        Ok(IdentityKey { signer, id })
    }

    /// The identity key pair labelled `label` that has no certificate yet, left by a
    /// retrieval whose answer was lost, so the retry asks for a certificate for the same key.
    /// `None` if there is none (or only certified ones, or only keys not generated on this
    /// token: `CKA_LOCAL`, `CKA_ALWAYS_SENSITIVE` and `CKA_NEVER_EXTRACTABLE` must be true).
    pub fn uncertified_identity_key(&self, label: &str) -> Result<Option<IdentityKey>, TokenError> {
        let template = [Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label.as_bytes().to_vec())];
        for private in self.find(&template)? {
            let id = self.id_of(private)?;
            if !self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?.is_empty() {
                continue;
            }
            // Only a key born on this token and never out of it may be certified as one: a key
            // imported under the same label must not ride on the token's proof.
            let born_here = [
                Attribute::Local(true),
                Attribute::AlwaysSensitive(true),
                Attribute::NeverExtractable(true),
                Attribute::Extractable(false),
            ];
            let wanted = [
                AttributeType::Local,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Extractable,
            ];
            let found = self.session.get_attributes(private, &wanted).map_err(device)?;
            if !born_here.iter().all(|a| found.contains(a)) {
                continue;
            }
            let public = self.find(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id.clone())])?;
            let config = Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() };
            let signer = Pkcs11Signer::for_key(&config, private, public.first().copied())?;
            return Ok(Some(IdentityKey { signer, id }));
        }
        Ok(None)
    }

    /// Signs `message` with the shipment key the RA put on the token before shipping it
    /// ([`crate::stock::provision`]): ECDSA P-256 with SHA-256, DER-encoded, which verifies
    /// under the shipment public key the RA recorded. [`TokenError::NoShipmentKey`] if the
    /// token has none (it is not from the RA's stock).
    pub fn shipment_sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(SHIPMENT_KEY_LABEL.as_bytes().to_vec()),
        ];
        match self.find(&template)?.as_slice() {
            [key] => ecdsa_p256_sign(&self.session, *key, message),
            [] => Err(TokenError::NoShipmentKey { token: self.config.token_label.clone() }),
            many => Err(TokenError::AmbiguousKey {
                token: self.config.token_label.clone(),
                key: SHIPMENT_KEY_LABEL.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// The YubiKey PIV attestation of `key`, as ykcs11 exposes it: the attestation certificate
    /// of the key's PIV slot (labelled `X.509 Certificate for PIV Attestation 9a` and so on)
    /// and the F9 device attestation certificate (labelled `X.509 Certificate for PIV
    /// Attestation`, `CKA_ID` 0x19), DER, in that order: what
    /// `signet_pki::attestation::verify` takes. `None` if the module exposes no attestation,
    /// or none whose public key is `key`'s.
    pub fn piv_attestation(&self, key: &IdentityKey) -> Result<Option<Vec<Vec<u8>>>, TokenError> {
        let certificate = |label: &str| {
            let template = [Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Label(label.as_bytes().to_vec())];
            read_certificates(&self.session, &template)
        };
        let device_certificate =
            certificate(PIV_ATTESTATION_LABEL)?.into_iter().find(|c| c.id == [PIV_F9_ID]).map(|c| c.der);
        let Some(f9) = device_certificate else { return Ok(None) };
        // The key's own slot first (ykcs11 gives the key that slot's one-byte CKA_ID); then any
        // slot, since the public key decides.
        let own_slot = match key.id() {
            [id] => piv_slot_name(*id),
            _ => None,
        };
        let slots = own_slot.into_iter().chain(PIV_SLOTS.iter().map(|(_, name)| *name));
        for slot in slots {
            for attestation in certificate(&format!("{PIV_ATTESTATION_LABEL} {slot}"))? {
                let attested = CertificateParts::parse(&attestation.der).map(|c| c.spki).unwrap_or_default();
                if attested == key.public_key_spki() {
                    return Ok(Some(vec![attestation.der, f9]));
                }
            }
        }
        Ok(None)
    }

    /// Deletes a key pair and its certificate, if it has one: a key that did not get its
    /// certificate (the server refused, or the connection failed), so the token holds no key
    /// without a purpose, or the key a renewal replaced.
    pub fn discard(&self, key: IdentityKey) -> Result<(), TokenError> {
        let IdentityKey { signer, id } = key;
        drop(signer);
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY, ObjectClass::CERTIFICATE] {
            for object in self.find(&[Attribute::Class(class), Attribute::Id(id.clone())])? {
                self.session.destroy_object(object).map_err(device)?;
            }
        }
        Ok(())
    }

    /// Deletes a transport key whose encryption key will never come (the server refused).
    pub fn discard_transport_key(&self, key: TransportKey) -> Result<(), TokenError> {
        for object in [Some(key.private), key.public].into_iter().flatten() {
            self.session.destroy_object(object).map_err(device)?;
        }
        Ok(())
    }

    /// The identity key labelled `label` and its certificate (DER): what a renewal replaces.
    /// [`TokenError::KeyNotFound`] if there is no such key, or if it has no certificate.
    pub fn certified_key(&self, label: &str) -> Result<(IdentityKey, Vec<u8>), TokenError> {
        let private = self.one_object(ObjectClass::PRIVATE_KEY, label)?;
        let id = self.id_of(private)?;
        let not_found = || TokenError::KeyNotFound { token: self.config.token_label.clone(), key: label.to_owned() };
        let certificate = match self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?[..]
        {
            [one] => match self.session.get_attributes(one, &[AttributeType::Value]).map_err(device)?.as_slice() {
                [Attribute::Value(der)] => der.clone(),
                _ => return Err(not_found()),
            },
            _ => return Err(not_found()),
        };
        let signer = Pkcs11Signer::open(&Pkcs11KeyConfig { key_label: label.to_owned(), ..self.config.clone() })?;
        Ok((IdentityKey { signer, id }, certificate))
    }

    /// Finishes a renewal once `new` has its certificate: gives the new key pair and
    /// certificate the label `label` of the ones they replace, then deletes `old` and its
    /// certificate, so applications find one identity under the usual label.
    pub fn replace(&self, old: IdentityKey, new: IdentityKey, label: &str) -> Result<(), TokenError> {
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY, ObjectClass::CERTIFICATE] {
            for object in self.find(&[Attribute::Class(class), Attribute::Id(new.id.clone())])? {
                self.session
                    .update_attributes(object, &[Attribute::Label(label.as_bytes().to_vec())])
                    .map_err(device)?;
            }
        }
        self.discard(old)
    }

    /// Writes the issued certificate under the key's label and `CKA_ID`, then each CA
    /// certificate of `chain` (issuing CA first) not already on the token, labelled with its
    /// common name. Refuses a certificate for another key: written, it would pair a
    /// certificate with a private key that cannot sign for it.
    pub fn store_certificates(
        &self,
        key: &IdentityKey,
        certificate: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<(), TokenError> {
        let leaf = CertificateParts::parse(certificate)?;
        if leaf.spki != key.public_key_spki() {
            return Err(TokenError::Certificate("it certifies another public key than the one on the token".into()));
        }
        let cas = chain.iter().map(|der| CertificateParts::parse(der)).collect::<Result<Vec<_>, _>>()?;
        self.create_certificate(&leaf, key.label(), key.id())?;
        for ca in &cas {
            let present = self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Value(ca.der.clone())])?;
            if present.is_empty() {
                self.create_certificate(ca, &ca.common_name, &[])?;
            }
        }
        Ok(())
    }

    /// Generates the RSA-2048 transport key a server-generated encryption key is wrapped for
    /// ([`signet_pki::escrow::EncryptionKey::wrap_for_transport`]): session objects only, so
    /// the pair never outlives this session, and a private half that may only unwrap.
    pub fn generate_transport_key(&self) -> Result<TransportKey, TokenError> {
        let pair = generate_key_pair(&self.session, KeyAlgorithm::Rsa2048, KeyUsage::Unwrap, false, TRANSPORT_LABEL)?;
        Ok(TransportKey { public: Some(pair.public), private: pair.private, spki: pair.spki, persistent: false })
    }

    /// The persistent transport key labelled `label`, made if there is none: a token object
    /// (RSA-2048, private, sensitive, never extractable, unwrap only), so that if the server's
    /// answer is lost, the encryption key it sends again next time still unwraps.
    /// [`Self::install_encryption_key`] deletes it once the encryption key is installed.
    pub fn transport_key(&self, label: &str) -> Result<TransportKey, TokenError> {
        let by_label = |class| {
            self.find(&[Attribute::Class(class), Attribute::Token(true), Attribute::Label(label.as_bytes().to_vec())])
        };
        for private in by_label(ObjectClass::PRIVATE_KEY)? {
            let usable = self
                .session
                .get_attributes(
                    private,
                    &[
                        AttributeType::KeyType,
                        AttributeType::Unwrap,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                    ],
                )
                .map_err(device)?;
            let wanted = [
                Attribute::KeyType(KeyType::RSA),
                Attribute::Unwrap(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ];
            if !wanted.iter().all(|w| usable.contains(w)) {
                continue;
            }
            let id = self.id_of(private)?;
            let public = self.find(&[Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id)])?.first().copied();
            // An RSA private key object carries its modulus and public exponent.
            let (_, spki) = public_key_info(&self.session, public.unwrap_or(private), label)?;
            return Ok(TransportKey { public, private, spki, persistent: true });
        }
        let pair = generate_key_pair(&self.session, KeyAlgorithm::Rsa2048, KeyUsage::Unwrap, true, label)?;
        Ok(TransportKey { public: Some(pair.public), private: pair.private, spki: pair.spki, persistent: true })
    }

    /// Installs the escrowed encryption key the server generated and wrapped for `transport`
    /// (DESIGN §2: encryption keys may be escrowed, so, unlike identity keys, they are born
    /// off the token). The AES-256 key is unwrapped with `CKM_RSA_PKCS_OAEP` (SHA-1,
    /// MGF1-SHA-1, no label) as a session key, and the PKCS#8 RSA private key with
    /// `CKM_AES_KEY_WRAP_PAD` (RFC 5649) as a token key labelled `label` with a fresh random
    /// `CKA_ID`: private, sensitive, not extractable, allowed to decrypt and unwrap only.
    /// Its certificate and public key are written beside it under the same label and
    /// `CKA_ID`, which is returned.
    ///
    /// A certificate for another key is [`TokenError::Certificate`], a wrapped key that does
    /// not unwrap is [`TokenError::Unwrap`]; either way nothing is left on the token. The AES
    /// key is destroyed whatever happens; the transport key pair once the key is installed (a
    /// session-only one whatever happens; a persistent one stays for a retry when installing
    /// fails).
    ///
    /// Older encryption keys under the same label are kept: mail encrypted to them must stay
    /// readable after a renewal.
    pub fn install_encryption_key(
        &self,
        transport: TransportKey,
        wrapped_key: &[u8],
        wrapped_private_key: &[u8],
        certificate_der: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, TokenError> {
        let installed = self.install_unwrapped(&transport, wrapped_key, wrapped_private_key, certificate_der, label);
        if installed.is_ok() || !transport.persistent {
            discard(&self.session, [Some(transport.private), transport.public].into_iter().flatten());
        }
        installed
    }

    fn install_unwrapped(
        &self,
        transport: &TransportKey,
        wrapped_key: &[u8],
        wrapped_private_key: &[u8],
        certificate_der: &[u8],
        label: &str,
    ) -> Result<Vec<u8>, TokenError> {
        let certificate = CertificateParts::parse(certificate_der)?;
        let unwrap_error = |e: CkError| TokenError::Unwrap(describe(&e));
        let aes_template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
        ];
        let aes = self
            .session
            .unwrap_key(&rsa_oaep_sha1(), transport.private, wrapped_key, &aes_template)
            .map_err(unwrap_error)?;

        let id = random_id()?;
        let private_template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Unwrap(true),
            Attribute::Sign(false),
            Attribute::SignRecover(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let private = self.session.unwrap_key(&Mechanism::AesKeyWrapPad, aes, wrapped_private_key, &private_template);
        // The AES key has done its one job.
        discard(&self.session, [aes]);
        let private = private.map_err(unwrap_error)?;

        let written = self.certify_unwrapped(private, &certificate, label, &id);
        if written.is_err() {
            // The fresh CKA_ID names only what this call made.
            discard(&self.session, self.find(&[Attribute::Id(id.clone())]).unwrap_or_else(|_| vec![private]));
        }
        written.map(|()| id)
    }

    /// Checks that `certificate` certifies the unwrapped `private` key, then writes it and
    /// the public key object beside the key, as retrieval does for identity keys.
    fn certify_unwrapped(
        &self,
        private: ObjectHandle,
        certificate: &CertificateParts,
        label: &str,
        id: &[u8],
    ) -> Result<(), TokenError> {
        // An RSA private key object carries its modulus and public exponent.
        let (_, spki) = public_key_info(&self.session, private, label)?;
        if spki != certificate.spki {
            return Err(TokenError::Certificate("it certifies another public key than the one unwrapped".into()));
        }
        let public = self
            .session
            .get_attributes(private, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(device)?;
        let mut template = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        template.extend(public);
        self.session.create_object(&template).map_err(device)?;
        self.create_certificate(certificate, label, id)?;
        Ok(())
    }

    fn create_certificate(&self, cert: &CertificateParts, label: &str, id: &[u8]) -> Result<ObjectHandle, TokenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            // Certificates are public: applications read them before the PIN is asked.
            Attribute::Private(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(cert.subject.clone()),
            Attribute::Issuer(cert.issuer.clone()),
            Attribute::SerialNumber(cert.serial.clone()),
            Attribute::Value(cert.der.clone()),
        ];
        if !id.is_empty() {
            template.push(Attribute::Id(id.to_vec()));
        }
        self.session.create_object(&template).map_err(device)
    }

    /// Removes key pairs labelled `label` that no certificate shares a `CKA_ID` with;
    /// [`TokenError::KeyExists`] if one has its certificate.
    fn remove_unfinished(&self, label: &str) -> Result<(), TokenError> {
        let by_label = |class| self.find(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())]);
        for private in by_label(ObjectClass::PRIVATE_KEY)? {
            let id = self.id_of(private)?;
            let certified =
                !self.find(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id.clone())])?.is_empty();
            if certified {
                return Err(TokenError::KeyExists { token: self.config.token_label.clone(), key: label.to_owned() });
            }
            self.session.destroy_object(private).map_err(device)?;
        }
        for public in by_label(ObjectClass::PUBLIC_KEY)? {
            self.session.destroy_object(public).map_err(device)?;
        }
        Ok(())
    }

    fn find(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>, TokenError> {
        self.session.find_objects(template).map_err(device)
    }

    fn one_object(&self, class: ObjectClass, label: &str) -> Result<ObjectHandle, TokenError> {
        match self.find(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])?.as_slice() {
            [one] => Ok(*one),
            [] => Err(TokenError::KeyNotFound { token: self.config.token_label.clone(), key: label.to_owned() }),
            many => Err(TokenError::AmbiguousKey {
                token: self.config.token_label.clone(),
                key: label.to_owned(),
                count: many.len(),
            }),
        }
    }

    fn id_of(&self, object: ObjectHandle) -> Result<Vec<u8>, TokenError> {
        match self.session.get_attributes(object, &[AttributeType::Id]).map_err(device)?.as_slice() {
            [Attribute::Id(id)] => Ok(id.clone()),
            _ => Err(TokenError::Device("a key on the token has no CKA_ID".into())),
        }
    }
}

/// What a certificate object's attributes hold, from the certificate itself.
pub(super) struct CertificateParts {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    /// The DER INTEGER, as PKCS#11 §4.6.3 wants `CKA_SERIAL_NUMBER`.
    serial: Vec<u8>,
    spki: Vec<u8>,
    common_name: String,
}

impl CertificateParts {
    fn parse(der: &[u8]) -> Result<Self, TokenError> {
        let bad = |e: der::Error| TokenError::Certificate(format!("not an X.509 certificate: {e}"));
        let cert = x509_cert::Certificate::from_der(der).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let common_name = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == COMMON_NAME)
            .find_map(|atv| std::str::from_utf8(atv.value.value()).ok())
            .map_or_else(|| tbs.subject.to_string(), str::to_owned);
        Ok(Self {
            der: der.to_vec(),
            subject: tbs.subject.to_der().map_err(bad)?,
            issuer: tbs.issuer.to_der().map_err(bad)?,
            serial: tbs.serial_number.to_der().map_err(bad)?,
            spki: tbs.subject_public_key_info.to_der().map_err(bad)?,
            common_name,
        })
    }
}
