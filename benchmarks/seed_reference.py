"""The original notebook's hot paths, transcribed as the baseline for `python -m benchmarks`.

THIS IS A REFERENCE, NOT LIBRARY CODE. It keeps the original's habits on
purpose (per-image degradation on the CPU inside the Dataset, a fresh
generator forward for every update, the discriminator's gradients computed
during generator steps, a dummy zero image on a read error) so that the
benchmarks measure what the original recipe costs. Use `medgan_nb` for real
work. Source: ../shared/seed/medical-image-enhancement-gan.txt (cells 3, 4, 7-12).
tests/test_models.py also checks medgan_nb's networks against these classes.

Two changes, both cost-neutral: `PerceptualLoss` takes `weights=` so the
benchmark can run offline with random VGG19 weights (same layers, same cost),
and `torchvision.models.vgg19(pretrained=True)` is spelled with the current
`weights=` argument.
"""
from __future__ import annotations

import os
import random

import torch
import torchvision.transforms as transforms
from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from torchvision.models import vgg19


class Config:
    """The original's hyper-parameters (cell 3); paths and device left out."""
    IMAGE_SIZE = 256
    NUM_CHANNELS = 3
    BATCH_SIZE = 4
    LEARNING_RATE_G = 2e-4
    LEARNING_RATE_D = 1e-4
    BETA1 = 0.5
    LAMBDA_L1 = 70.0
    LAMBDA_PERCEPTUAL = 10.0
    G_TRAIN_MULTIPLIER = 3
    NOISE_STD_DEV = 0.15
    NOISE_STD_DEV_VARIATION = 0.05
    SALT_VS_PEPPER_RATIO = 0.5
    SP_NOISE_PROB = 0.01
    BLUR_KERNEL_SIZE = 5
    BRIGHTNESS_FACTOR = 0.2
    CONTRAST_FACTOR = 0.2
    SATURATION_FACTOR = 0.2
    HUE_FACTOR = 0.05


# ------------------------------------------------------------ cell 4: degradation, one image at a time
def apply_degradation(image_tensor, config=Config):
    image_tensor_cpu = image_tensor.cpu()
    degraded_tensor = image_tensor_cpu.clone()
    current_noise_std_dev = config.NOISE_STD_DEV + random.uniform(-config.NOISE_STD_DEV_VARIATION,
                                                                  config.NOISE_STD_DEV_VARIATION)
    current_noise_std_dev = max(0, current_noise_std_dev)
    gaussian_noise = torch.randn_like(degraded_tensor) * current_noise_std_dev
    degraded_tensor = degraded_tensor + gaussian_noise
    degraded_tensor = torch.clamp(degraded_tensor, 0, 1)

    num_pixels = degraded_tensor.numel()
    num_sp_noise_pixels = int(num_pixels * config.SP_NOISE_PROB)
    noise_indices = torch.randperm(num_pixels)[:num_sp_noise_pixels]
    salt_mask = torch.rand(num_sp_noise_pixels) < config.SALT_VS_PEPPER_RATIO
    pepper_mask = ~salt_mask
    degraded_tensor_flat = degraded_tensor.view(-1)
    degraded_tensor_flat[noise_indices[pepper_mask]] = 0.0
    degraded_tensor_flat[noise_indices[salt_mask]] = 1.0
    degraded_tensor = degraded_tensor_flat.view(degraded_tensor.shape)

    if config.BLUR_KERNEL_SIZE > 0:
        blur_transform = transforms.GaussianBlur(kernel_size=(config.BLUR_KERNEL_SIZE, config.BLUR_KERNEL_SIZE),
                                                 sigma=(0.1, 2.0))
        degraded_tensor = blur_transform(degraded_tensor)
    jitter_transform = transforms.ColorJitter(brightness=config.BRIGHTNESS_FACTOR, contrast=config.CONTRAST_FACTOR,
                                              saturation=config.SATURATION_FACTOR, hue=config.HUE_FACTOR)
    return jitter_transform(degraded_tensor)


# ------------------------------------------------------------ cell 7: dataset
class KvasirSEGDataset(Dataset):
    def __init__(self, root_dir, image_size, transform=None, degradation_transform=None):
        self.root_dir = root_dir
        self.image_size = image_size
        self.image_files = [f for f in os.listdir(root_dir) if f.endswith(('.jpg', '.jpeg', '.png'))]
        self.transform = transform
        self.degradation_transform = degradation_transform
        if self.transform is None:
            self.transform = transforms.Compose([
                transforms.Resize((self.image_size, self.image_size)),
                transforms.ToTensor(),
                transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
            ])

    def __len__(self):
        return len(self.image_files)

    def __getitem__(self, idx):
        img_path = os.path.join(self.root_dir, self.image_files[idx])
        try:
            image = Image.open(img_path).convert('RGB')
            high_quality_image = self.transform(image)
            high_quality_image_0_1 = high_quality_image * 0.5 + 0.5
            if self.degradation_transform:
                low_quality_image_0_1 = self.degradation_transform(high_quality_image_0_1)
            else:
                low_quality_image_0_1 = high_quality_image_0_1
            low_quality_image = transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])(low_quality_image_0_1)
            return low_quality_image, high_quality_image
        except Exception as e:
            print(f"Error loading image {img_path}: {e}")
            dummy_tensor = torch.zeros(3, self.image_size, self.image_size)
            return dummy_tensor, dummy_tensor


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


# ------------------------------------------------------------ cells 8, 9, 12: networks
class UNetDown(nn.Module):
    def __init__(self, in_channels, out_channels, normalize=True, dropout=0.0):
        super().__init__()
        layers = [nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UNetUp(nn.Module):
    def __init__(self, in_channels, out_channels, dropout=0.0):
        super().__init__()
        layers = [nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
                  nn.BatchNorm2d(out_channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip_input):
        x = self.model(x)
        return torch.cat((x, skip_input), 1)


class UnetGenerator(nn.Module):
    def __init__(self, in_channels=3, out_channels=3):
        super().__init__()
        self.down1 = UNetDown(in_channels, 64, normalize=False)
        self.down2 = UNetDown(64, 128)
        self.down3 = UNetDown(128, 256)
        self.down4 = UNetDown(256, 512, dropout=0.5)
        self.down5 = UNetDown(512, 512, dropout=0.5)
        self.down6 = UNetDown(512, 512, dropout=0.5)
        self.down7 = UNetDown(512, 512, dropout=0.5)
        self.down8 = UNetDown(512, 512, normalize=False, dropout=0.5)
        self.up1 = UNetUp(512, 512, dropout=0.5)
        self.up2 = UNetUp(1024, 512, dropout=0.5)
        self.up3 = UNetUp(1024, 512, dropout=0.5)
        self.up4 = UNetUp(1024, 512)
        self.up5 = UNetUp(1024, 256)
        self.up6 = UNetUp(512, 128)
        self.up7 = UNetUp(256, 64)
        self.final_conv = nn.Sequential(nn.ConvTranspose2d(128, out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        d6 = self.down6(d5)
        d7 = self.down7(d6)
        d8 = self.down8(d7)
        u1 = self.up1(d8, d7)
        u2 = self.up2(u1, d6)
        u3 = self.up3(u2, d5)
        u4 = self.up4(u3, d4)
        u5 = self.up5(u4, d3)
        u6 = self.up6(u5, d2)
        u7 = self.up7(u6, d1)
        return self.final_conv(u7)


class Discriminator(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels * 2, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(256, 512, 4, 1, 1, bias=False), nn.BatchNorm2d(512), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(512, 1, 4, 1, 1, bias=False))

    def forward(self, img_A, img_B):
        return self.model(torch.cat((img_A, img_B), 1))


# ------------------------------------------------------------ cell 10: perceptual loss
class PerceptualLoss(nn.Module):
    def __init__(self, weights="IMAGENET1K_V1", device="cpu"):
        super().__init__()
        vgg = vgg19(weights=weights).features
        for param in vgg.parameters():
            param.requires_grad = False
        self.features = nn.Sequential(vgg[:2], vgg[2:7], vgg[7:12], vgg[12:21]).to(device).eval()
        self.criterion = nn.L1Loss()

    def forward(self, fake_img, real_img):
        normalize_vgg = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        fake_features = self.features(normalize_vgg(fake_img * 0.5 + 0.5))
        real_features = self.features(normalize_vgg(real_img * 0.5 + 0.5))
        return self.criterion(fake_features, real_features)


# ------------------------------------------------------------ cell 11: one training iteration
class Trainer:
    """The models, losses and optimisers of `train_model()`, and its loop body as `iteration`."""

    def __init__(self, device="cpu", vgg_weights="IMAGENET1K_V1"):
        self.device = device
        self.generator = UnetGenerator(Config.NUM_CHANNELS, Config.NUM_CHANNELS).to(device)
        self.discriminator = Discriminator(Config.NUM_CHANNELS).to(device)
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)
        self.criterion_GAN = nn.BCEWithLogitsLoss()
        self.criterion_L1 = nn.L1Loss()
        self.perceptual_loss_fn = PerceptualLoss(vgg_weights, device)
        self.optimizer_G = torch.optim.Adam(self.generator.parameters(), lr=Config.LEARNING_RATE_G,
                                            betas=(Config.BETA1, 0.999))
        self.optimizer_D = torch.optim.Adam(self.discriminator.parameters(), lr=Config.LEARNING_RATE_D,
                                            betas=(Config.BETA1, 0.999))

    def iteration(self, low_res_img, high_res_img):
        generator, discriminator, DEVICE = self.generator, self.discriminator, self.device
        low_res_img = low_res_img.to(DEVICE)
        high_res_img = high_res_img.to(DEVICE)

        self.optimizer_D.zero_grad()
        real_labels = torch.ones(low_res_img.size(0), 1, 30, 30, device=DEVICE)
        fake_high_res_for_D = generator(low_res_img)
        output_real = discriminator(low_res_img, high_res_img)
        loss_D_real = self.criterion_GAN(output_real, real_labels)
        fake_labels = torch.zeros(low_res_img.size(0), 1, 30, 30, device=DEVICE)
        output_fake = discriminator(low_res_img, fake_high_res_for_D.detach())
        loss_D_fake = self.criterion_GAN(output_fake, fake_labels)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        self.optimizer_D.step()

        for _ in range(Config.G_TRAIN_MULTIPLIER):
            self.optimizer_G.zero_grad()
            fake_high_res_img = generator(low_res_img)
            output_fake_for_G = discriminator(low_res_img, fake_high_res_img)
            loss_G_GAN = self.criterion_GAN(output_fake_for_G, real_labels)
            loss_G_L1 = self.criterion_L1(fake_high_res_img, high_res_img) * Config.LAMBDA_L1
            loss_G_perceptual = self.perceptual_loss_fn(fake_high_res_img, high_res_img) * Config.LAMBDA_PERCEPTUAL
            loss_G = loss_G_GAN + loss_G_L1 + loss_G_perceptual
            loss_G.backward()
            self.optimizer_G.step()
        return loss_D.item(), loss_G.item()


# ------------------------------------------------------------ cell 13: inference as the original evaluates
def enhance(generator, low_res_img):
    """The original's evaluation forward: eval mode, no_grad, batch as given."""
    generator.eval()
    with torch.no_grad():
        return generator(low_res_img)
